#include "http/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace cdpsync::http {

namespace net = boost::asio;

RateLimiter::Permit& RateLimiter::Permit::operator=(Permit&& other) noexcept {
    if (this != &other) {
        departed();
        limiter_ = std::exchange(other.limiter_, nullptr);
    }
    return *this;
}

void RateLimiter::Permit::departed(Clock::time_point when) {
    if (auto* limiter = std::exchange(limiter_, nullptr)) limiter->departed(when);
}

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

RateLimiter::Clock::duration RateLimiter::departure_allowance() const {
    return std::min<Clock::duration>(std::chrono::milliseconds(1), margin_ / 2);
}

RateLimiter::Clock::duration RateLimiter::catch_up() const { return spacing() / 2; }

RateLimiter::Clock::time_point RateLimiter::next_allowed(Clock::time_point ready) const {
    const size_t n = burst();
    if (n == 0) return ready;
    auto slot = anchor_ ? std::max(ready, *anchor_ + spacing()) : ready;
    // The window: at most `burst` departures in any window - allowance.
    if (departures_.size() >= n)
        slot = std::max(slot, departures_[departures_.size() - n] + window() - departure_allowance());
    return slot;
}

void RateLimiter::grant(Clock::time_point slot) {
    anchor_ = anchor_ ? std::max(slot, *anchor_) : slot;
    awaiting_departure_ = true;
}

void RateLimiter::departed(Clock::time_point when) {
    const auto pushed = when - catch_up();
    anchor_ = anchor_ ? std::max(pushed, *anchor_) : pushed;
    if (!departures_.empty()) when = std::max(when, departures_.back());
    departures_.push_back(when);
    // Older departures can no longer hold a send back.
    while (departures_.front() < when - window()) departures_.pop_front();
    awaiting_departure_ = false;
    wake_waiters();
}

void RateLimiter::assume_sent(Clock::time_point when) {
    grant(when);
    departed(when);
}

net::awaitable<RateLimiter::Permit> RateLimiter::acquire() {
    // The slot counts from when the send was ready, so a timer that fires a little late
    // does not shift every later slot.
    const auto ready = Clock::now();
    for (;;) {
        if (cancelled_) throw boost::system::system_error(net::error::operation_aborted);
        if (burst() == 0) co_return Permit();
        auto wake_at = Clock::time_point::max();  // until the previous send has left
        if (!awaiting_departure_) {
            const auto slot = next_allowed(ready);
            if (slot <= Clock::now()) {
                grant(slot);
                co_return Permit(this);
            }
            wake_at = slot;
        }
        // Sleep, then look again: another waiter may have taken the slot, the previous send
        // may have left, or the rate changed.
        net::steady_timer timer(executor_, wake_at);
        struct Listed {  // unlisted even if the frame is destroyed while suspended
            std::list<net::steady_timer*>& list;
            std::list<net::steady_timer*>::iterator it;
            ~Listed() { list.erase(it); }
        } listed{waiting_, waiting_.insert(waiting_.end(), &timer)};
        boost::system::error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
}

void RateLimiter::wake_waiters() {
    for (auto* timer : waiting_) timer->cancel();
}

void RateLimiter::set_qps(double qps) {
    qps_ = qps;
    wake_waiters();
}

void RateLimiter::cancel() {
    cancelled_ = true;
    wake_waiters();
}

}  // namespace cdpsync::http
