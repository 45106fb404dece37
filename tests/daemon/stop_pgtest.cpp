// SIGTERM reaches calls in flight and retry sleeps through the daemon's event loop.
#include "daemon_fixture.hpp"
#include "notify_socket.hpp"

namespace cdpsync::testing {
namespace {

// A call sleeping in retry backoff (a 429 asking for 120 s) does not hold the stop for the
// grace period (25 s) or until the process is killed: the sleep is cancelled, the op stays
// pending for the next run, and the run is recorded as interrupted.
TEST_F(DaemonTest, SigtermDuringARetryBackoffEndsTheRunPromptly) {
    auto& d = settled(long_backoff_settings());
    add_groups_always_429();
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

namespace cdpsync::testing {
namespace {

// The watchdog is fed on progress: while a call hangs (the CDP answers nothing for 3 s,
// the call's timeout) the daemon stops pinging systemd, and pings again once it moves.
TEST_F(DaemonTest, WatchdogIsNotFedWhileARunMakesNoProgress) {
    Settings s;
    s.retry_attempts = 1;
    NotifySocket notify;
    // WatchdogSec=2s: a tick every 0.5 s; no progress for 1 s stops the pings.
    auto& d = start_daemon(write_config(s), {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "2000000"}});
    ASSERT_TRUE(eventually([&] { return runs("status = 'succeeded'") >= 1; }, 20s)) << log_text();

    sim::FaultConfig hang;
    sim::FaultRule slow;
    slow.latency_ms = 8000;  // beyond timeout_ms (3000): the call times out unanswered
    hang.endpoints["customerAddGroups"] = slow;
    server->faults().configure(hang);
    add_rows(1, 1, "alpha");
    const auto messages = notify.receive_for(7s);

    // The longest gap between two pings, and whether pings went on after it.
    Clock::time_point last{};
    Clock::duration longest{};
    int pings = 0;
    for (const auto& [at, text] : messages) {
        if (text.find("WATCHDOG=1") == std::string::npos) continue;
        if (pings++ > 0) longest = std::max(longest, at - last);
        last = at;
    }
    const double gap = std::chrono::duration<double>(longest).count();
    EXPECT_GT(pings, 4) << "the idle daemon is fed every 0.5 s";
    EXPECT_GE(gap, 1.4) << "pinged on although the call hung (longest gap " << gap << " s)\n" << log_text();
    EXPECT_LT(gap, 4.0) << "not fed again after the call timed out\n" << log_text();
    EXPECT_TRUE(d.running());
}

}  // namespace
}  // namespace cdpsync::testing
