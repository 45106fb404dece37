// Daemon pieces without PostgreSQL: the schedule, backoff, once-per-change logging, the
// systemd notify protocol (against a socket of the test's own), and the binary's signals.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/un.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "config/logging.hpp"

#include "daemon/notify.hpp"
#include "daemon/schedule.hpp"
#include "daemon_fixture.hpp"
#include "notify_socket.hpp"
#include "support/shell.hpp"

namespace cdpsync::testing {
namespace {

using daemon::Backoff;
using daemon::Condition;
using daemon::Duration;
using daemon::FirstRun;
using daemon::Periodic;

TEST(Periodic, FirstRunImmediatelyThenEveryJitteredPeriod) {
    const auto t0 = Clock::now();
    Periodic p("poll", 10s, 0.1, FirstRun::immediately, t0);
    EXPECT_TRUE(p.due(t0));
    p.done(t0);
    EXPECT_FALSE(p.due(t0 + 8999ms));
    EXPECT_TRUE(p.due(t0 + 11001ms));
    EXPECT_GE(p.next(), t0 + 9s);
    EXPECT_LE(p.next(), t0 + 11s);
}

TEST(Periodic, AfterPeriodWaitsAndLastRunAgoCountsFromHistory) {
    const auto t0 = Clock::now();
    Periodic p("full", Duration(3600'000), 0, FirstRun::after_period, t0);
    EXPECT_FALSE(p.due(t0));
    EXPECT_EQ(p.next(), t0 + 1h);
    p.last_ran_ago(Duration(3000'000), t0);  // 50 min ago: due in 10 min
    EXPECT_EQ(p.next(), t0 + 10min);
    p.last_ran_ago(Duration(7200'000), t0);  // overdue: due now
    EXPECT_TRUE(p.due(t0));
}

TEST(Periodic, TriggerAndNewPeriodAndDisabled) {
    const auto t0 = Clock::now();
    Periodic p("poll", 60s, 0, FirstRun::after_period, t0);
    p.trigger(t0 + 1s);
    EXPECT_TRUE(p.due(t0 + 1s));
    p.done(t0);
    p.set_period(10s, t0 + 5s);  // 60 -> 10: next moves 50 s earlier, but not before now
    EXPECT_EQ(p.next(), t0 + 10s);
    p.set_period(1s, t0 + 9s);
    EXPECT_EQ(p.next(), t0 + 9s);
    Periodic off("full", Duration(0), 0, FirstRun::immediately, t0);
    EXPECT_FALSE(off.due(t0 + 100h));
}

TEST(Backoff, DoublesUpToTheCapAndResets) {
    Backoff b(1s, 10s);
    EXPECT_EQ(b.next(), 1s);
    EXPECT_EQ(b.next(), 2s);
    EXPECT_EQ(b.next(), 4s);
    EXPECT_EQ(b.next(), 8s);
    EXPECT_EQ(b.next(), 10s);
    EXPECT_EQ(b.next(), 10s);
    b.reset();
    EXPECT_EQ(b.next(), 1s);
}

TEST(Condition, LogsOncePerChangeOfStateNotPerAttempt) {
    std::ostringstream os;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(os);
    auto log = std::make_shared<spdlog::logger>("t", sink);
    Condition c("PostgreSQL", log);
    const auto t0 = Clock::now();
    EXPECT_FALSE(c.ok(t0));
    EXPECT_TRUE(c.failed("connection refused", "retrying", t0));
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(c.failed("connection refused", "retrying", t0));
    EXPECT_TRUE(c.is_down());
    EXPECT_TRUE(c.ok(t0 + 30s));
    EXPECT_FALSE(c.ok(t0 + 31s));
    const auto text = os.str();
    EXPECT_EQ(count_of(text, "PostgreSQL failed: connection refused; retrying"), 1) << text;
    EXPECT_EQ(count_of(text, "PostgreSQL is back after 30 s and 6 failed attempt(s)"), 1) << text;
}

TEST(ProgressWatchdog, FedWithoutARunAndWhileTheRunMovesNotWhenItStalls) {
    daemon::ProgressWatchdog w(Duration(60000));
    const auto t0 = Clock::time_point{} + std::chrono::hours(1);
    EXPECT_TRUE(w.should_feed(t0, false, 0));  // idle: the loop coming round is enough
    EXPECT_TRUE(w.should_feed(t0 + 1s, true, 0));  // a run starts
    EXPECT_TRUE(w.should_feed(t0 + 30s, true, 0));
    EXPECT_TRUE(w.should_feed(t0 + 50s, true, 4));  // calls answered
    EXPECT_TRUE(w.should_feed(t0 + 100s, true, 4));
    EXPECT_FALSE(w.should_feed(t0 + 111s, true, 4)) << "60 s without a call answered";
    EXPECT_FALSE(w.should_feed(t0 + 200s, true, 4));
    EXPECT_TRUE(w.should_feed(t0 + 201s, true, 5)) << "it moves again";
    EXPECT_TRUE(w.should_feed(t0 + 400s, false, 5)) << "the run ended";
    EXPECT_TRUE(w.should_feed(t0 + 401s, true, 5)) << "a new run gets its own allowance";
    EXPECT_FALSE(w.should_feed(t0 + 462s, true, 5));
}

TEST(SystemdNotifier, WithoutNotifySocketIsANoOp) {
    ::unsetenv("NOTIFY_SOCKET");
    daemon::SystemdNotifier n;
    EXPECT_FALSE(n.active());
    n.ready();
    n.status("x");
    EXPECT_EQ(n.watchdog_interval().count(), 0);
}

TEST(SystemdNotifier, SendsReadyStatusAndWatchdogToTheSocket) {
#ifndef CDP_SYNC_HAVE_SYSTEMD
    GTEST_FAIL() << "built without libsystemd: sd_notify is not available";
#else
    NotifySocket s;
    ::setenv("NOTIFY_SOCKET", s.path().c_str(), 1);
    ::setenv("WATCHDOG_USEC", "2000000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    daemon::SystemdNotifier n;
    EXPECT_TRUE(n.active());
    EXPECT_EQ(n.watchdog_interval(), std::chrono::microseconds(2000000));
    n.ready();
    n.status("leader: idle\nsecond line dropped");
    n.watchdog();
    n.stopping();
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    auto got = s.receive_until("STOPPING=1", 2s);
    EXPECT_EQ(got, "READY=1\nSTATUS=leader: idle\nWATCHDOG=1\nSTOPPING=1\n");
#endif
}

// The binary without a reachable PostgreSQL: it does not exit, says why in STATUS, and
// stops cleanly (exit 0, STOPPING=1) on SIGTERM.
TEST(DaemonBinary, WaitsForAnUnreachablePostgresAndStopsOnSigterm) {
    ASSERT_TRUE(std::filesystem::exists(binary())) << binary() << " is not built";
    const auto dir = std::filesystem::temp_directory_path() / ("cdp-sync-daemon-unit-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream out(dir / "config.yaml");
        out << "cdp:\n  base_url: http://127.0.0.1:9/openapi\n  token_env: CDP_SYNC_UNIT_TOKEN\n"
            << "database:\n  dsn: \"host=127.0.0.1 port=1 dbname=x connect_timeout=1\"\n"
            << "  desired_memberships: \"SELECT 1::bigint, 'a'\"\n"
            << "sync:\n  poll_interval_s: 1\nlogging:\n  file: \"\"\n";
    }
    NotifySocket s;
    Child d({"--config", (dir / "config.yaml").string(), "run"}, dir / "out.txt",
            {{"NOTIFY_SOCKET", s.path()}, {"CDP_SYNC_UNIT_TOKEN", "t"}});
    auto got = s.receive_until("STATUS=waiting for PostgreSQL", 10s);
    EXPECT_NE(got.find("READY=1"), std::string::npos) << got;
    EXPECT_NE(got.find("STATUS=waiting for PostgreSQL"), std::string::npos) << got;
    std::this_thread::sleep_for(2500ms);
    EXPECT_TRUE(d.running()) << read_file(dir / "out.txt");
    d.signal(SIGTERM);
    auto code = d.wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0);
    got = s.receive_until("STOPPING=1", 2s);
    EXPECT_NE(got.find("STOPPING=1"), std::string::npos) << got;
    const auto out = read_file(dir / "out.txt");
    // Logged once, although it retried several times.
    EXPECT_EQ(count_of(out, "] PostgreSQL ("), 1) << out;
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cdpsync::testing

namespace cdpsync::testing {
namespace {

// The script's stdout and stderr together.
std::pair<int, std::string> shell_all_output(const std::string& command) { return shell(command + " 2>&1"); }

TEST(SystemdUnits, VerifyCleanAndSecurityExposureAtMostTwo) {
    auto [code, out] = shell_all_output(std::string(CDP_SYNC_SOURCE_DIR) + "/scripts/check-units.sh " + binary());
    std::cout << out;  // the figures, in the test log
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("clean: cdp-sync-resync.service cdp-sync.service"), std::string::npos) << out;
    EXPECT_EQ(count_of(out, "Overall exposure level"), 2) << out;
}

TEST(Install, StagesBinariesConfigAndUnitsAndUninstallKeepsTheConfig) {
    const auto root = std::filesystem::temp_directory_path() / ("cdp-sync-install-" + std::to_string(::getpid()));
    std::filesystem::remove_all(root);
    const std::string scripts = std::string(CDP_SYNC_SOURCE_DIR) + "/scripts/";
    auto [code, out] = shell_all_output(scripts + "install.sh --no-build --build-dir " + CDP_SYNC_BINARY_DIR + " --destdir " +
                             root.string() + " --prefix /opt/cdp");
    ASSERT_EQ(code, 0) << out;
    for (const char* f : {"opt/cdp/bin/cdp-sync", "opt/cdp/bin/cdp-sync-sim", "etc/cdp-sync/config.yaml",
                          "opt/cdp/share/doc/cdp-sync/examples/cdp-sync.example.yaml", "etc/systemd/system/cdp-sync.service",
                          "etc/systemd/system/cdp-sync-resync.service"})
        EXPECT_TRUE(std::filesystem::exists(root / f)) << f << "\n" << out;
    const auto unit = read_file(root / "etc/systemd/system/cdp-sync.service");
    EXPECT_NE(unit.find("ExecStart=/opt/cdp/bin/cdp-sync --config /etc/cdp-sync/config.yaml run"), std::string::npos);

    // A second install keeps an edited config.
    std::ofstream(root / "etc/cdp-sync/config.yaml") << "# edited\n";
    std::tie(code, out) = shell_all_output(scripts + "install.sh --no-build --build-dir " + CDP_SYNC_BINARY_DIR + " --destdir " +
                                root.string() + " --prefix /opt/cdp");
    ASSERT_EQ(code, 0) << out;
    EXPECT_EQ(read_file(root / "etc/cdp-sync/config.yaml"), "# edited\n");

    std::tie(code, out) = shell_all_output(scripts + "uninstall.sh --destdir " + root.string() + " --prefix /opt/cdp");
    ASSERT_EQ(code, 0) << out;
    EXPECT_FALSE(std::filesystem::exists(root / "opt/cdp/bin/cdp-sync"));
    EXPECT_FALSE(std::filesystem::exists(root / "etc/systemd/system/cdp-sync.service"));
    EXPECT_TRUE(std::filesystem::exists(root / "etc/cdp-sync/config.yaml"));
    std::tie(code, out) = shell_all_output(scripts + "uninstall.sh --destdir " + root.string() + " --prefix /opt/cdp --purge");
    EXPECT_EQ(code, 0) << out;
    EXPECT_FALSE(std::filesystem::exists(root / "etc/cdp-sync"));
    std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace cdpsync::testing

namespace cdpsync::testing {
namespace {

// The terminal's progress bar (the logger's status line) and log lines never share a line:
// the bar is erased before each log line and drawn again after it.
TEST(StatusLine, IsErasedBeforeEachLogLineAndDrawnAgainAfterIt) {
    const auto path = std::filesystem::temp_directory_path() / ("cdp-sync-status-line-" + std::to_string(::getpid()));
    std::fflush(stderr);
    const int saved = ::dup(2);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::close(fd);
    logging::init_sinks({std::make_shared<spdlog::sinks::stderr_sink_mt>()}, "info");
    auto log = logging::logger("status-line-test");
    logging::set_status_line("BAR 1/2");
    log->info("first");
    logging::set_status_line("BAR 2/2");
    log->info("second");
    logging::set_status_line("");
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    logging::init_stderr("warn");
    const std::string out = read_file(path);
    std::filesystem::remove(path);
    const std::string erase = "\r\033[K";
    EXPECT_EQ(out.find("BAR 1/2\033[K["), std::string::npos) << "a log line was written after the bar: " << out;
    EXPECT_NE(out.find("\rBAR 1/2\033[K" + erase + "["), std::string::npos) << out;
    EXPECT_NE(out.find("first\n\rBAR 1/2\033[K"), std::string::npos) << "not drawn again after the line: " << out;
    EXPECT_NE(out.find("second\n\rBAR 2/2\033[K" + erase), std::string::npos) << out;
    EXPECT_EQ(out.substr(out.size() - erase.size()), erase) << "the bar stays after it was removed: " << out;
}

}  // namespace
}  // namespace cdpsync::testing
