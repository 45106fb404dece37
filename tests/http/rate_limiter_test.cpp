#include "http/rate_limiter.hpp"

#include <algorithm>
#include <map>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <gtest/gtest.h>

#include "http/client.hpp"
#include "http/requests.hpp"
#include "support/test_server.hpp"

namespace cdpsync::http {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

using test::get;
using Clock = RateLimiter::Clock;

// The fake clock: a fixed origin plus offsets.
const Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);

TEST(RateLimiter, SpacesSendsEvenlyByWindowOverQps) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 4, 20ms);
    EXPECT_EQ(limiter.spacing(), 255ms);  // (1 s + 20 ms) / 4
    EXPECT_EQ(limiter.next_allowed(t0), t0);
    limiter.record(t0);
    // No burst: the 2nd send waits one spacing after the 1st ...
    EXPECT_EQ(limiter.next_allowed(t0 + 10ms), t0 + 255ms);
    // ... and a sender that was idle goes at once.
    EXPECT_EQ(limiter.next_allowed(t0 + 2s), t0 + 2s);
    // Spacing counts from the actual send: a late send pushes the next one back.
    limiter.record(t0 + 300ms);
    EXPECT_EQ(limiter.next_allowed(t0 + 300ms), t0 + 555ms);
}

// Counts, for a list of sorted sends, the most in any sliding second and in any fixed
// clock second (from a whole second of `origin` to the next).
struct WindowCounts {
    size_t sliding = 0, fixed = 0;
};
WindowCounts window_counts(const std::vector<Clock::time_point>& sends, Clock::time_point origin) {
    WindowCounts out;
    size_t first = 0;
    for (size_t i = 0; i < sends.size(); ++i) {
        while (sends[i] - sends[first] >= 1s) ++first;
        out.sliding = std::max(out.sliding, i - first + 1);
    }
    std::map<int64_t, size_t> per_second;
    for (auto t : sends)
        out.fixed = std::max(out.fixed, ++per_second[std::chrono::floor<std::chrono::seconds>(t - origin).count()]);
    return out;
}

TEST(RateLimiter, NoWindowEverHoldsMoreThanQps) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 10, 0ms);
    std::vector<Clock::time_point> sends;
    // Greedy sender: sends as soon as allowed, with irregular extra pauses.
    Clock::time_point now = t0;
    for (int i = 0; i < 200; ++i) {
        now = limiter.next_allowed(now + std::chrono::milliseconds((i * 37) % 90));
        limiter.record(now);
        sends.push_back(now);
    }
    for (size_t i = 0; i + 10 < sends.size(); ++i) EXPECT_GE(sends[i + 10] - sends[i], 1s) << "at send " << i;
    // Whatever the phase of a fixed-window server's clock against ours.
    for (auto phase : {0ms, 1ms, 333ms, 999ms}) EXPECT_LE(window_counts(sends, t0 + phase).fixed, 10u);
}

TEST(RateLimiter, AlwaysReadySenderSustains99PercentAndNeverExceedsTheLimit) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 50, 5ms);
    std::vector<Clock::time_point> sends;
    Clock::time_point now = t0;
    for (int i = 0; i < 5000; ++i) {
        now = limiter.next_allowed(now);
        limiter.record(now);
        sends.push_back(now);
    }
    const double seconds = std::chrono::duration<double>(sends.back() - sends.front()).count();
    const double rate = static_cast<double>(sends.size() - 1) / seconds;
    EXPECT_GE(rate, 0.99 * 50) << rate;
    EXPECT_LE(rate, 50.0) << rate;
    const auto counts = window_counts(sends, t0 + 500ms);
    EXPECT_LE(counts.sliding, 50u);
    EXPECT_LE(counts.fixed, 50u);
}

TEST(RateLimiter, FractionalQpsSpacesSends) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 0.5, 20ms);
    EXPECT_EQ(limiter.burst(), 1u);
    EXPECT_EQ(limiter.next_allowed(t0), t0);
    limiter.record(t0);
    EXPECT_EQ(limiter.next_allowed(t0 + 1s), t0 + 2020ms);
    limiter.record(t0 + 2020ms);
    EXPECT_EQ(limiter.next_allowed(t0 + 2030ms), t0 + 4040ms);
}

TEST(RateLimiter, FractionalAboveOneRoundsDown) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 2.5, 0ms);
    EXPECT_EQ(limiter.burst(), 2u);
    limiter.record(t0);
    EXPECT_EQ(limiter.next_allowed(t0), t0 + 500ms);
}

TEST(RateLimiter, DisabledNeverWaits) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 0);
    for (int i = 0; i < 100; ++i) limiter.record(t0);
    EXPECT_EQ(limiter.next_allowed(t0), t0);
}

TEST(RateLimiter, SetQpsAppliesToTheNextSend) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 2, 0ms);
    limiter.record(t0);
    limiter.record(t0 + 100ms);
    EXPECT_EQ(limiter.next_allowed(t0 + 200ms), t0 + 600ms);
    limiter.set_qps(8);
    EXPECT_EQ(limiter.next_allowed(t0 + 200ms), t0 + 225ms);
    limiter.set_qps(1);
    EXPECT_EQ(limiter.next_allowed(t0 + 200ms), t0 + 1100ms);
    limiter.set_qps(0);
    EXPECT_EQ(limiter.next_allowed(t0 + 200ms), t0 + 200ms);
}

TEST(RateLimiter, AcquireWaitsOnARealClock) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 2, 0ms);
    std::vector<Clock::time_point> granted;
    testing::run_until_done(ioc, [&]() -> net::awaitable<void> {
        for (int i = 0; i < 3; ++i) {
            co_await limiter.acquire();
            granted.push_back(Clock::now());
        }
    }());
    ASSERT_EQ(granted.size(), 3u);
    EXPECT_GE(granted[2] - granted[0], 990ms);  // 1 s window, less the time to note granted[0]
    EXPECT_GE(granted[1] - granted[0], 495ms);  // evenly spaced, no burst
}

TEST(RateLimiter, CancelWakesWaitersWithOperationAborted) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 1, 0ms);
    int aborted = 0, granted = 0;
    auto waiter = [&]() -> net::awaitable<void> {
        try {
            co_await limiter.acquire();
            ++granted;
        } catch (const boost::system::system_error& e) {
            if (e.code() == net::error::operation_aborted) ++aborted;
        }
    };
    for (int i = 0; i < 3; ++i) net::co_spawn(ioc, waiter(), net::detached);
    const auto start = Clock::now();
    testing::run_until_done(ioc, [&]() -> net::awaitable<void> {
        net::steady_timer timer(co_await net::this_coro::executor, 100ms);
        co_await timer.async_wait(net::use_awaitable);
        limiter.cancel();
    }());
    EXPECT_EQ(granted, 1);
    EXPECT_EQ(aborted, 2);
    EXPECT_LT(Clock::now() - start, 900ms);  // did not sit out the 1 s window
}

// The real thing: what the SERVER sees. At 20 qps, 50 requests over ~2 s through 8
// connections: no 1-second window of arrivals holds more than 20. The connections are
// opened beforehand (limiter off), so every measured request meets a server already
// waiting on its connection and arrival times differ from send times by similar amounts.
TEST(RateLimiter, ServerNeverSeesMoreThanQpsInAnySecond) {
    testing::TestServer server({}, [](const testing::TestRequest& r) {
        return r.target == "/warm-up" ? testing::delayed(50ms) : testing::reply();
    });
    net::io_context ioc;
    ClientOptions options;
    options.base_url = server.base_url();
    options.max_in_flight = 8;
    options.rate_limit_qps = 0;
    // Wider than the 5 ms default: this test shares a loaded machine, where two loopback
    // requests can differ in delay by more than a real network's jitter.
    options.rate_limit_margin = 25ms;
    Client client(ioc.get_executor(), options);
    int ok = 0;
    auto send = [&](const char* path) -> net::awaitable<void> {
        auto r = co_await client.send(get(path));
        if (r.has_value() && r.value().status == 200) ++ok;
    };
    for (int i = 0; i < 8; ++i) net::co_spawn(ioc, send("/warm-up"), net::detached);
    ioc.run();
    ASSERT_EQ(ok, 8);
    ASSERT_EQ(client.stats().connections_opened, 8u);

    client.set_rate_limit(20);
    ok = 0;
    for (int i = 0; i < 50; ++i) net::co_spawn(ioc, send("/ping"), net::detached);
    ioc.restart();
    ioc.run();
    EXPECT_EQ(ok, 50);
    EXPECT_EQ(client.stats().connections_opened, 8u);
    std::vector<Clock::time_point> arrivals;
    for (const auto& r : server.requests())
        if (r.target == "/ping") arrivals.push_back(r.arrival);
    ASSERT_EQ(arrivals.size(), 50u);
    std::sort(arrivals.begin(), arrivals.end());
    for (size_t i = 0; i + 20 < arrivals.size(); ++i)
        EXPECT_GE(arrivals[i + 20] - arrivals[i], 1s)
            << "21 arrivals within "
            << std::chrono::duration_cast<std::chrono::microseconds>(arrivals[i + 20] - arrivals[i]).count()
            << " us, from #" << i;
    // And the limiter does not throttle far below the rate: 50 sends need just over 2 s.
    EXPECT_LT(arrivals.back() - arrivals.front(), 4s);
}

}  // namespace
}  // namespace cdpsync::http
