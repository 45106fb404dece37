// A limiter shared by every request (reads and writes draw on one budget): sends are spaced
// evenly, one every window / burst, so no window of one second (as the server measures it,
// sliding or fixed) ever holds more than `qps` sends while the sustained rate stays at
// qps / (1 + margin): 99.5% of the limit with the default 5 ms margin. The margin absorbs
// the difference in network delay between two requests; each spacing is measured from the
// previous actual send, so a timer that fires late never lets the next one go early.
//
// Why not a token bucket: a full bucket plus its refill lets 2 x qps through in a second.
// Why not a burst per window (what this limiter did before): the window must then carry a
// margin each second, and bursts meet a fixed-window server at its boundary.
#pragma once

#include <chrono>
#include <list>
#include <optional>
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
                std::chrono::milliseconds margin = std::chrono::milliseconds(5));

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

    // Sends allowed per window, the window (max(1 s, 1/qps) + margin) and the spacing
    // between two sends (window / burst).
    size_t burst() const;
    Clock::duration window() const;
    Clock::duration spacing() const;

private:
    boost::asio::any_io_executor executor_;
    double qps_;
    std::chrono::milliseconds margin_;
    std::optional<Clock::time_point> last_send_;
    bool cancelled_ = false;
    std::list<boost::asio::steady_timer*> waiting_;  // timers of suspended acquire() calls
};

}  // namespace cdpsync::http
