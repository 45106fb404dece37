#include "http/rate_limiter.hpp"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <gtest/gtest.h>

#include "http/client.hpp"
#include "support/test_server.hpp"

namespace cdpsync::http {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

// Requests are built by functions, never as braced temporaries inside co_await: GCC 12
// destroys a braced aggregate temporary argument of a co_await expression twice.
Request get(std::string path) {
    Request r;
    r.path = std::move(path);
    return r;
}
using Clock = RateLimiter::Clock;

// The fake clock: a fixed origin plus offsets.
const Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);

TEST(RateLimiter, BurstUpToQpsThenWaitsForTheWindow) {
    net::io_context ioc;
    RateLimiter limiter(ioc.get_executor(), 3, 20ms);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(limiter.next_allowed(t0 + i * 10ms), t0 + i * 10ms);
        limiter.record(t0 + i * 10ms);
    }
    // The 4th send must wait until the 1st is a full window (1 s + margin) old.
    EXPECT_EQ(limiter.next_allowed(t0 + 30ms), t0 + 1020ms);
    EXPECT_EQ(limiter.next_allowed(t0 + 2s), t0 + 2s);
    limiter.record(t0 + 1020ms);
    // The 5th waits for the 2nd.
    EXPECT_EQ(limiter.next_allowed(t0 + 1020ms), t0 + 1030ms);
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
    limiter.record(t0);
    EXPECT_EQ(limiter.next_allowed(t0), t0 + 1s);
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
    EXPECT_EQ(limiter.next_allowed(t0 + 200ms), t0 + 1s);
    limiter.set_qps(4);
    EXPECT_EQ(limiter.next_allowed(t0 + 200ms), t0 + 200ms);
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
    EXPECT_LT(granted[1] - granted[0], 500ms);  // generous: the first two go at once
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
    Client client(ioc.get_executor(), options);
    int ok = 0;
    auto send = [&](const char* path) -> net::awaitable<void> {
        auto r = co_await client.send(get(path));
        if (r.ok() && r.response->status == 200) ++ok;
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
