#include "http/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace cdpsync::http {

namespace net = boost::asio;

RateLimiter::RateLimiter(net::any_io_executor executor, double qps, std::chrono::milliseconds margin)
    : executor_(std::move(executor)), qps_(qps), margin_(margin) {}

size_t RateLimiter::burst() const {
    if (qps_ <= 0) return 0;
    // A fractional rate above 1 rounds down: 2.5 qps allows 2 sends in any second.
    return std::max<size_t>(1, static_cast<size_t>(std::floor(qps_)));
}

RateLimiter::Clock::duration RateLimiter::window() const {
    if (qps_ <= 0) return Clock::duration::zero();
    auto spacing = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / qps_));
    return std::max<Clock::duration>(std::chrono::seconds(1), spacing) + margin_;
}

RateLimiter::Clock::duration RateLimiter::spacing() const {
    const size_t n = burst();
    if (n == 0) return Clock::duration::zero();
    return window() / static_cast<Clock::rep>(n);
}

RateLimiter::Clock::time_point RateLimiter::next_allowed(Clock::time_point now) const {
    if (burst() == 0 || !last_send_) return now;
    return std::max(now, *last_send_ + spacing());
}

void RateLimiter::record(Clock::time_point when) {
    // Keep the sends ordered even if a caller's clock value is slightly behind the last one.
    last_send_ = last_send_ ? std::max(when, *last_send_) : when;
}

net::awaitable<void> RateLimiter::acquire() {
    for (;;) {
        if (cancelled_) throw boost::system::system_error(net::error::operation_aborted);
        const auto now = Clock::now();
        const auto at = next_allowed(now);
        if (at <= now) {
            if (qps_ > 0) record(now);
            co_return;
        }
        // Sleep, then look again: another waiter may have taken the slot, or the rate changed.
        net::steady_timer timer(executor_, at);
        auto it = waiting_.insert(waiting_.end(), &timer);
        boost::system::error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        waiting_.erase(it);
    }
}

void RateLimiter::set_qps(double qps) {
    qps_ = qps;
    for (auto* timer : waiting_) timer->cancel();
}

void RateLimiter::cancel() {
    cancelled_ = true;
    for (auto* timer : waiting_) timer->cancel();
}

}  // namespace cdpsync::http
