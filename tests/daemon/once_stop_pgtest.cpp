// A one-shot run of the CLI (`run --once`, a local `resync`) takes SIGTERM/SIGINT on its event
// loop: the run stops at a safe point, is recorded 'interrupted', the command exits 5, and the
// next run finishes the work without losing any of it. Calls still unanswered 2 s after the
// signal, and retry sleeps, are cancelled.
#include "daemon_fixture.hpp"

namespace cdpsync::testing {
namespace {

class OneShotStop : public DaemonTest {
protected:
    // Starts `command` on 150 new memberships at 20 calls/s (about 7 s of apply), sends
    // `sig` once the first ones reached the CDP, and checks the interrupted outcome.
    void stop_mid_apply(const std::vector<std::string>& command, int sig) {
        Settings s;
        s.qps = 20;
        config = write_config(s);
        add_rows(1, 150, "alpha");
        std::vector<std::string> args{"--config", config.string()};
        args.insert(args.end(), command.begin(), command.end());
        Child cli(args, dir / "stopped.out");
        ASSERT_TRUE(eventually([&] { return members("alpha") > 0; }, 20s)) << log_text();
        cli.signal(sig);
        const auto code = cli.wait(40s);
        const std::string out = read_file(dir / "stopped.out");
        ASSERT_TRUE(code) << "still running 40 s after the signal\n" << log_text();
        EXPECT_EQ(*code, 5) << out << log_text();
        EXPECT_NE(out.find("interrupted"), std::string::npos) << out;
        EXPECT_LT(members("alpha"), 150u) << "the run finished instead of stopping";
        EXPECT_EQ(runs("status = 'interrupted'"), 1) << log_text();
        EXPECT_EQ(runs("status = 'running'"), 0);
    }

    std::filesystem::path config;
};

TEST_F(OneShotStop, SigtermStopsRunOnceAsInterruptedAndTheNextRunFinishesIt) {
    stop_mid_apply({"run", "--once"}, SIGTERM);
    auto [code, out] = run_cli({"--config", config.string(), "run", "--once"});
    EXPECT_EQ(code, 0) << out << log_text();
    EXPECT_EQ(members("alpha"), 150u);
    EXPECT_EQ(runs("status = 'running'"), 0);
    EXPECT_EQ(runs("status = 'interrupted'"), 0) << "the interrupted run was not resumed";
}

TEST_F(OneShotStop, CtrlCStopsALocalResyncAsInterruptedAndTheNextResyncFinishesIt) {
    stop_mid_apply({"resync"}, SIGINT);
    auto [code, out] = run_cli({"--config", config.string(), "resync"});
    EXPECT_EQ(code, 0) << out << log_text();
    EXPECT_EQ(members("alpha"), 150u);
    EXPECT_EQ(runs("status = 'running'"), 0);
    EXPECT_EQ(runs("status = 'interrupted'"), 0) << "the interrupted run was not resumed";
}

// A call sleeping in retry backoff (a 429 asking for 120 s) does not hold a one-shot run's
// stop for the grace period (30 s): the sleep is cancelled, the op stays pending for the
// next run, and the run is recorded as interrupted.
TEST_F(OneShotStop, SigtermDuringARetryBackoffEndsRunOncePromptly) {
    config = write_config(long_backoff_settings());
    add_groups_always_429();
    add_rows(1, 1, "alpha");
    Child cli({"--config", config.string(), "run", "--once"}, dir / "stopped.out");
    ASSERT_TRUE(eventually([&] { return log_text().find("retrying in") != std::string::npos; }, 15s)) << log_text();

    const auto t0 = Clock::now();
    cli.signal(SIGTERM);
    const auto code = cli.wait(15s);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ASSERT_TRUE(code) << "still running 15 s after SIGTERM\n" << log_text();
    EXPECT_EQ(*code, 5) << read_file(dir / "stopped.out");
    EXPECT_LT(secs, 10.0) << log_text();
    EXPECT_EQ(runs("status = 'interrupted'"), 1) << log_text();
    EXPECT_EQ(runs("status = 'running'"), 0);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".op WHERE state = 'pending'"), 1);
    EXPECT_FALSE(is_member(1, "alpha"));
}

}  // namespace
}  // namespace cdpsync::testing
