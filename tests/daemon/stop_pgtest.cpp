// SIGTERM reaches calls in flight and retry sleeps through the daemon's event loop.
#include "daemon_fixture.hpp"

namespace cdpsync::testing {
namespace {

// A call sleeping in retry backoff (a 429 asking for 120 s) does not hold the stop for the
// grace period (25 s) or until the process is killed: the sleep is cancelled, the op stays
// pending for the next run, and the run is recorded as interrupted.
TEST_F(DaemonTest, SigtermDuringARetryBackoffEndsTheRunPromptly) {
    Settings s;
    s.level = "debug";  // the retry's "retrying in" line
    s.retry_attempts = 5;
    s.retry_base_ms = 100;
    s.retry_max_ms = 120000;
    auto& d = settled(s);

    sim::FaultConfig slow;
    sim::FaultRule always_429;
    always_429.burst_429_probability = 1.0;
    always_429.retry_after_s = 120;
    slow.endpoints["customerAddGroups"] = always_429;
    server->faults().configure(slow);
    add_rows(1, 1, "alpha");
    ASSERT_TRUE(eventually([&] { return log_text().find("retrying in") != std::string::npos; }, 15s)) << log_text();

    const auto t0 = Clock::now();
    d.signal(SIGTERM);
    auto code = d.wait(15s);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ASSERT_TRUE(code) << "still running 15 s after SIGTERM\n" << log_text();
    EXPECT_EQ(*code, 0);
    EXPECT_LT(secs, 10.0) << log_text();
    EXPECT_EQ(runs("status = 'interrupted'"), 1) << log_text();
    EXPECT_EQ(runs("status = 'running'"), 0);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".op WHERE state = 'pending'"), 1);
    EXPECT_FALSE(is_member(1, "alpha"));
}

}  // namespace
}  // namespace cdpsync::testing
