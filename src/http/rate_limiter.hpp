// A limiter shared by every request: no window of one second (as measured by the server,
// so with a small safety margin) ever holds more than `qps` sends. A sliding log of the
// last sends rather than a plain token bucket, because a full bucket plus its refill would
// let 2 x qps through in the first second.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

namespace cdpsync::http {

class RateLimiter {
public:
    using Clock = std::chrono::steady_clock;

    // qps <= 0 disables limiting. margin widens the window to absorb network jitter.
    RateLimiter(boost::asio::any_io_executor executor, double qps,
                std::chrono::milliseconds margin = std::chrono::milliseconds(20));

    // Suspends until a send is allowed, then records it. Throws boost::system::system_error
    // (operation_aborted) after cancel().
    boost::asio::awaitable<void> acquire();

    // Pure part, for unit tests with a fake clock: when may the next send happen, given now?
    Clock::time_point next_allowed(Clock::time_point now) const;
    void record(Clock::time_point when);

    // Takes effect for sends not yet granted; waiters re-evaluate at once.
    void set_qps(double qps);
    double qps() const { return qps_; }
    void cancel();

    // Sends allowed per window, and the window (max(1 s, 1/qps) + margin).
    size_t burst() const;
    Clock::duration window() const;

private:
    boost::asio::any_io_executor executor_;
    double qps_;
    std::chrono::milliseconds margin_;
    std::deque<Clock::time_point> sends_;
    bool cancelled_ = false;
    Clock::time_point reserved_until_{};  // the latest recorded send; keeps the log ordered
    std::list<boost::asio::steady_timer*> waiting_;  // timers of suspended acquire() calls
};

}  // namespace cdpsync::http
