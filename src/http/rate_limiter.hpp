// A limiter shared by every request (reads and writes draw on one budget): sends are spaced
// evenly, one every window / burst, with window = 1 s + margin, so no window of one second
// (as the server measures it, sliding or fixed) ever holds more than `qps` sends while the
// sustained rate stays at qps / (1 + margin): 99.2% of the limit with the default 8 ms margin.
//
// What the server counts is when requests left, not when they were allowed to: the caller
// reports each departure (its write completed) through the Permit. No send is allowed while
// the previous one has not left, and a send is allowed at the later of
//  - its slot: one spacing after max(the previous slot, the previous departure - spacing / 2).
//    A send that left a little late (timer, a busy thread: up to half a spacing) is caught
//    up on, so lateness does not accumulate into lost rate; one that left later pushes the
//    next slot back, so two sends never meet closer than half a spacing;
//  - the window: `burst` departures back + window - allowance, so however late some sends
//    left and others did not (a stalled thread, a full socket buffer), no window - allowance
//    ever holds more than `burst` departures.
// Idle time is not made up: sends that met back to back would reach a server that handles
// them one by one (and stamps their arrival when it gets to each) closer than they left.
// What this guarantees, on the client's clock: any qps + 1 consecutive departures span at
// least window - allowance (1.007 s by default). A server that sees them shifted by
// differing delays (network, its own scheduling) still counts at most qps in any second as
// long as those delays differ by less than margin - allowance. The allowance
// (min(1 ms, margin / 2)) keeps the ordinary lateness of a timer and a write (tens of
// microseconds) from pushing a send a window later; lateness that persists beyond it (a
// machine too busy to send on time, send after send) does cost rate.
//
// Why not a token bucket: a full bucket plus its refill lets 2 x qps through in a second.
// Why not a burst per window (what this limiter did before): the window must then carry a
// margin each second, and bursts meet a fixed-window server at its boundary.
#pragma once

#include <chrono>
#include <deque>
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

    // One granted send. departed() tells the limiter the request has left; a permit dropped
    // without it (the send was abandoned or failed) counts as departed when dropped. Empty
    // (and inert) when the limiter is disabled. The limiter must outlive its permits.
    class Permit {
    public:
        Permit() = default;
        explicit Permit(RateLimiter* limiter) : limiter_(limiter) {}
        Permit(Permit&& other) noexcept : limiter_(std::exchange(other.limiter_, nullptr)) {}
        Permit& operator=(Permit&& other) noexcept;
        Permit(const Permit&) = delete;
        Permit& operator=(const Permit&) = delete;
        ~Permit() { departed(); }

        void departed(Clock::time_point when = Clock::now());

    private:
        RateLimiter* limiter_ = nullptr;
    };

    // qps <= 0 disables limiting. margin widens the window to absorb network jitter.
    RateLimiter(boost::asio::any_io_executor executor, double qps,
                std::chrono::milliseconds margin = std::chrono::milliseconds(8));

    // Suspends until a send is allowed (its slot has come and the previous send has left),
    // then grants it. Throws boost::system::system_error (operation_aborted) after cancel().
    boost::asio::awaitable<Permit> acquire();

    // Pure part, for unit tests with a fake clock. The slot of a send ready at `ready`
    // (ignoring whether the previous one has left); grant() takes a slot, departed() reports
    // that the granted send left at `when`.
    Clock::time_point next_allowed(Clock::time_point ready) const;
    void grant(Clock::time_point slot);
    void departed(Clock::time_point when);
    bool awaiting_departure() const { return awaiting_departure_; }

    // Counts a send made at `when` by someone else: another process that paced itself until
    // this limiter was made (a `run --once` before this one, a daemon before its restart).
    // The next send keeps one spacing from it, so the two processes' sends stay evenly spaced.
    void assume_sent(Clock::time_point when);

    // Takes effect for sends not yet granted; waiters re-evaluate at once.
    void set_qps(double qps);
    double qps() const { return qps_; }
    void cancel();

    // Sends allowed per window, the window (max(1 s, 1/qps) + margin), the spacing between
    // two sends (window / burst), what the window rule forgives (the allowance) and how much
    // of a late departure the next slot catches up on (half a spacing).
    size_t burst() const;
    Clock::duration window() const;
    Clock::duration spacing() const;
    Clock::duration departure_allowance() const;
    Clock::duration catch_up() const;

private:
    void wake_waiters();

    boost::asio::any_io_executor executor_;
    double qps_;
    std::chrono::milliseconds margin_;
    std::optional<Clock::time_point> anchor_;  // the next slot is one spacing after this
    std::deque<Clock::time_point> departures_;  // those within the last window, in order
    bool awaiting_departure_ = false;
    bool cancelled_ = false;
    std::list<boost::asio::steady_timer*> waiting_;  // timers of suspended acquire() calls
};

}  // namespace cdpsync::http
