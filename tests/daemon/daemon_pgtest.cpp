// The cdp-sync daemon (`cdp-sync run`, the built binary) against a real PostgreSQL and the
// in-process simulator.
#include "daemon_fixture.hpp"

namespace cdpsync::testing {
namespace {

using Daemon = DaemonTest;

TEST_F(Daemon, RowChangeReachesTheCdpWithinOnePollInterval) {
    add_rows(1, 20, "alpha");
    Settings s;
    s.poll_s = 2;
    auto& d = settled(s);
    ASSERT_TRUE(eventually([&] { return members("alpha") == 20; }, 10s)) << log_text();

    const auto t0 = Clock::now();
    add_rows(500, 3, "alpha");
    ASSERT_TRUE(eventually([&] { return is_member(502, "alpha"); }, 10s)) << log_text();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    // One poll interval (2 s, jittered by 10 %) plus the run itself.
    EXPECT_LT(secs, 2.2 + 1.5) << "took " << secs << " s";
    EXPECT_TRUE(d.running());
    RecordProperty("row_to_cdp_seconds", std::to_string(secs));
}

TEST_F(Daemon, NotifyPushesAChangeThroughInAboutASecond) {
    add_rows(1, 10, "alpha");
    Settings s;
    s.poll_s = 60;
    settled(s);
    ASSERT_TRUE(eventually([&] { return members("alpha") == 10; }, 10s)) << log_text();

    const auto t0 = Clock::now();
    // The payload names the schema so that daemons of tests running alongside do not wake;
    // a plain NOTIFY cdp_sync wakes every daemon on the database.
    exec("INSERT INTO " + src + ".m VALUES (777, 'alpha'); NOTIFY cdp_sync, '" + schema + "'");
    ASSERT_TRUE(eventually([&] { return is_member(777, "alpha"); }, 10s)) << log_text();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_LT(secs, 1.5) << "took " << secs << " s with a 60 s poll interval";
    RecordProperty("notify_to_cdp_seconds", std::to_string(secs));
}

TEST_F(Daemon, ChangeQuerySkipsTheDiffWhileItsValueStaysTheSame) {
    add_rows(1, 10, "alpha");
    Settings s;
    s.poll_s = 1;
    s.change_query = "SELECT count(*), max(customer_id) FROM " + src + ".m";
    settled(s);
    ASSERT_TRUE(eventually([&] { return members("alpha") == 10; }, 10s));
    // Let the first incremental run record the value, then count.
    std::this_thread::sleep_for(2500ms);
    const int64_t before = runs();
    std::this_thread::sleep_for(3500ms);
    EXPECT_EQ(runs(), before) << "runs happened although the change query kept its value";

    add_rows(900, 1, "alpha");
    ASSERT_TRUE(eventually([&] { return is_member(900, "alpha"); }, 5s)) << log_text();
    EXPECT_GT(runs(), before);
}

TEST_F(Daemon, SigtermBetweenRunsExitsZeroAndReleasesTheLeaderLock) {
    Settings s;
    auto& d = settled(s);
    d.signal(SIGTERM);
    auto code = d.wait(10s);
    ASSERT_TRUE(code) << "still running 10 s after SIGTERM";
    EXPECT_EQ(*code, 0);
    EXPECT_EQ(leader_pid(), 0);
    EXPECT_NE(log_text().find("cdp-sync daemon stopped"), std::string::npos);
}

TEST_F(Daemon, SigtermMidRunThenRestartLosesNothing) {
    add_rows(1, 5, "alpha");
    Settings s;
    s.qps = 20;  // 150 customers: about 7 s of apply
    auto& d = settled(s);
    ASSERT_TRUE(eventually([&] { return members("alpha") == 5; }, 10s));
    add_rows(1001, 150, "alpha");
    // Stop it while it is applying, once its progress was logged (every 5 s).
    ASSERT_TRUE(eventually([&] { return log_text().find(" ops/s") != std::string::npos; }, 15s)) << log_text();
    const auto log = log_text();
    EXPECT_NE(log.find("(incremental run) apply: "), std::string::npos) << log;
    d.signal(SIGTERM);
    auto code = d.wait(40s);
    ASSERT_TRUE(code) << "still running 40 s after SIGTERM";
    EXPECT_EQ(*code, 0);
    // It stopped at a safe point instead of finishing the run, and said so in the run row.
    EXPECT_LT(members("alpha"), 155);
    EXPECT_EQ(runs("status = 'interrupted'"), 1) << log_text();
    EXPECT_EQ(runs("status = 'running'"), 0);

    add_rows(1801, 5, "alpha");
    auto& again = start_daemon(write_config(s));
    ASSERT_TRUE(eventually([&] { return members("alpha") == 160; }, 30s)) << "members " << members("alpha") << "\n"
                                                                           << log_text();
    again.signal(SIGTERM);
    EXPECT_EQ(again.wait(40s), std::optional<int>(0));
    EXPECT_EQ(runs("status = 'running'"), 0) << "a run stayed open";
    EXPECT_EQ(runs("status = 'succeeded'"), runs()) << "every run, the interrupted one included, succeeded";
}

TEST_F(Daemon, SighupChangesTheRateLimitWithoutARestart) {
    add_rows(1, 2, "alpha");
    Settings s;
    s.qps = 2;
    auto& d = settled(s);
    ASSERT_TRUE(eventually([&] { return members("alpha") == 2; }, 10s));

    s.qps = 200;
    write_config(s);
    d.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return log_text().find("cdp.rate_limit_qps 2 -> 200") != std::string::npos; }, 5s))
        << log_text();
    const auto t0 = Clock::now();
    add_rows(1201, 60, "alpha");  // 60 calls: 30 s at 2 qps
    ASSERT_TRUE(eventually([&] { return members("alpha") == 62; }, 30s)) << log_text();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_LT(secs, 10) << "60 calls took " << secs << " s: the old 2 qps limit still applies";
    EXPECT_TRUE(d.running());
    EXPECT_EQ(count_of(log_text(), "cdp-sync daemon started"), 1) << "the daemon restarted";
}

TEST_F(Daemon, InvalidConfigOnSighupKeepsTheRunningOne) {
    auto& d = settled(Settings{});
    {
        std::ofstream out(dir / "config.yaml");
        out << "cdp:\n  rate_limit_qps: -3\n";
    }
    d.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return log_text().find("reload failed, keeping the running one") != std::string::npos; }, 5s))
        << log_text();
    add_rows(40, 1, "alpha");
    EXPECT_TRUE(eventually([&] { return is_member(40, "alpha"); }, 6s)) << log_text();
    EXPECT_TRUE(d.running());
}

TEST_F(Daemon, StandbyTakesOverWithinOnePollIntervalAfterKill9) {
    add_rows(1, 5, "alpha");
    Settings s;
    s.poll_s = 2;
    auto& first = settled(s);
    auto& second = start_daemon(dir / "config.yaml");
    ASSERT_TRUE(eventually([&] { return log_text().find("standby: pid " + std::to_string(first.pid())) != std::string::npos; }, 10s))
        << log_text();
    EXPECT_EQ(leader_pid(), first.pid());

    first.signal(SIGKILL);
    ASSERT_TRUE(first.wait(5s));
    const auto t0 = Clock::now();
    ASSERT_TRUE(eventually([&] { return leader_pid() == second.pid(); }, 10s)) << log_text();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_LT(secs, 2.0 + 1.0) << "takeover took " << secs << " s with a 2 s poll interval";
    RecordProperty("takeover_seconds", std::to_string(secs));

    add_rows(600, 2, "alpha");
    EXPECT_TRUE(eventually([&] { return is_member(601, "alpha"); }, 8s)) << log_text();
}

TEST_F(Daemon, WaitsOutTheCdpBeingDownAndLogsItOnce) {
    add_rows(1, 5, "alpha");
    Settings s;
    auto& d = settled(s);
    ASSERT_TRUE(eventually([&] { return members("alpha") == 5; }, 10s));

    sim::FaultConfig down;
    down.global.error_5xx_probability = 1.0;
    server->faults().configure(down);
    add_rows(700, 3, "alpha");
    std::this_thread::sleep_for(6s);
    EXPECT_TRUE(d.running());
    EXPECT_FALSE(is_member(700, "alpha"));

    server->faults().clear();
    ASSERT_TRUE(eventually([&] { return is_member(702, "alpha"); }, 20s)) << log_text();
    // The log file is flushed every second.
    EXPECT_TRUE(eventually([&] { return count_of(log_text(), "sync runs is back") == 1; }, 3s)) << log_text();
    EXPECT_EQ(count_of(log_text(), "sync runs failed"), 1) << log_text();
}

TEST_F(Daemon, ResyncAsksTheRunningDaemonAndReturnsItsOutcome) {
    add_rows(1, 10, "alpha");
    auto& d = settled(Settings{});
    ASSERT_TRUE(eventually([&] { return members("alpha") == 10; }, 10s));
    // A change by hand in the CDP: only a full resync sees it.
    server->state().add_membership(1500, *group_id("alpha"));
    const int64_t full_before = runs("mode = 'full'");

    auto [code, out] = run_cli({"--config", (dir / "config.yaml").string(), "resync"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("asked it for a full resync"), std::string::npos) << out;
    EXPECT_FALSE(is_member(1500, "alpha"));
    EXPECT_EQ(runs("mode = 'full'"), full_before + 1);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".resync_request WHERE exit_code = 0"), 1);
    EXPECT_TRUE(d.running());
}

// A request the daemon holds must not also run here: when waiting for it fails (the client's
// connection is killed), resync reports it and exits 1 instead of running the resync itself.
TEST_F(Daemon, ResyncQueuedForTheDaemonIsNeverRunHereToo) {
    add_rows(1, 3, "alpha");
    const auto config = write_config(Settings{});
    // A daemon that leads the schema but never takes a request: a session holding the leader lock.
    pqxx::connection leader(dsn);
    pqxx::nontransaction(leader).exec1("SELECT pg_advisory_lock(215568387, hashtext('" + schema + "'))");
    Child resync({"--config", config.string(), "resync"}, dir / "resync.out");
    auto queued = [&] {
        try {
            return scalar("SELECT count(*) FROM " + schema + ".resync_request");
        } catch (const pqxx::sql_error&) {
            return int64_t{0};  // no table yet
        }
    };
    ASSERT_TRUE(eventually([&] { return queued() == 1; }, 10s)) << read_file(dir / "resync.out");

    exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cdp-sync resync'");
    EXPECT_EQ(resync.wait(10s), std::optional<int>(1)) << read_file(dir / "resync.out");
    const std::string out = read_file(dir / "resync.out");
    EXPECT_NE(out.find("the daemon may still run it"), std::string::npos) << out;
    EXPECT_EQ(out.find("doing the resync here"), std::string::npos) << out;
    EXPECT_EQ(runs(), 0) << "the resync ran here although the daemon holds the request";
    EXPECT_EQ(queued(), 1) << "the request stays queued for the daemon";
    EXPECT_EQ(members("alpha"), 0u);
}

// Without a daemon, the same command runs the resync here.
TEST_F(Daemon, ResyncWithoutADaemonRunsHere) {
    add_rows(1, 3, "alpha");
    auto [code, out] = run_cli({"--config", write_config(Settings{}).string(), "resync"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(out.find("asked it for a full resync"), std::string::npos) << out;
    EXPECT_EQ(runs("mode = 'full' AND status = 'succeeded'"), 1);
    EXPECT_EQ(members("alpha"), 3u);
}

TEST_F(Daemon, Sigusr1AsksForAFullResyncEvenWithThePeriodicOneOff) {
    Settings s;
    s.full_h = 0;
    auto& d = settled(s);
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(runs("mode = 'full'"), 0) << "a full resync ran although full_resync_interval_h is 0";
    const int64_t before = runs("mode = 'full'");
    d.signal(SIGUSR1);
    EXPECT_TRUE(eventually([&] { return runs("mode = 'full' AND status = 'succeeded'") > before; }, 10s)) << log_text();
}

TEST_F(Daemon, FirstRunIsAFullResyncOnlyWhenTheHistoryHasNone) {
    add_rows(1, 3, "alpha");
    auto& d = settled(Settings{});  // full resync every 24 h
    ASSERT_TRUE(eventually([&] { return runs("mode = 'incremental' AND status = 'succeeded'") >= 1; }, 10s));
    EXPECT_EQ(runs("mode = 'full'"), 1);
    d.signal(SIGTERM);
    ASSERT_EQ(d.wait(10s), std::optional<int>(0));

    // A restart within the interval goes on with incremental runs.
    start_daemon(dir / "config.yaml");
    const int64_t incremental = runs("mode = 'incremental'");
    ASSERT_TRUE(eventually([&] { return runs("mode = 'incremental'") >= incremental + 2; }, 10s)) << log_text();
    EXPECT_EQ(runs("mode = 'full'"), 1);
}

TEST_F(Daemon, StatusShowsTheLeaderItsPhaseAndTheRuns) {
    add_rows(1, 3, "alpha");
    auto& d = settled(Settings{});
    auto [code, out] = run_cli({"--config", (dir / "config.yaml").string(), "status", "--json"});
    ASSERT_EQ(code, 0) << out;
    auto j = nlohmann::json::parse(out);
    ASSERT_FALSE(j["leader"].is_null()) << out;
    EXPECT_EQ(j["leader"]["pid"], d.pid());
    EXPECT_FALSE(j["leader"]["phase"].get<std::string>().empty());
    EXPECT_GE(j["runs"].size(), 1u);
    EXPECT_TRUE(j["last_success_s"].is_number());
    EXPECT_EQ(j["resync"]["queued"], 0);

    auto [tcode, text] = run_cli({"--config", (dir / "config.yaml").string(), "status"});
    EXPECT_EQ(tcode, 0);
    EXPECT_NE(text.find("Leader:       pid " + std::to_string(d.pid())), std::string::npos) << text;
    EXPECT_NE(text.find("Recent runs:"), std::string::npos) << text;
}

TEST_F(Daemon, StatusShowsOpsWaitingAndRetryFailedClearsTheWait) {
    add_rows(1, 2, "alpha");
    add_rows(5000, 1, "alpha");  // no such customer in the CDP: a known permanent refusal
    const auto config = write_config(Settings{});
    auto [rcode, rout] = run_cli({"--config", config.string(), "run", "--once"});
    EXPECT_NE(rcode, 0) << rout;
    auto [code, out] = run_cli({"--config", config.string(), "status", "--json"});
    ASSERT_EQ(code, 0) << out;
    auto j = nlohmann::json::parse(out);
    ASSERT_EQ(j["ops"]["waiting"].size(), 1u) << out;
    EXPECT_EQ(j["ops"]["waiting"][0]["state"], "permanent");
    EXPECT_EQ(j["ops"]["waiting"][0]["msg"], "客户不存在");
    auto [tcode, text] = run_cli({"--config", config.string(), "status"});
    EXPECT_NE(text.find("Waiting (backoff"), std::string::npos) << text;

    auto [fcode, fout] = run_cli({"--config", config.string(), "retry-failed"});
    EXPECT_EQ(fcode, 0) << fout;
    EXPECT_NE(fout.find("1 failed op(s)"), std::string::npos) << fout;
    auto [code2, out2] = run_cli({"--config", config.string(), "status", "--json"});
    EXPECT_TRUE(nlohmann::json::parse(out2)["ops"]["waiting"].empty()) << out2;
}

TEST_F(Daemon, StatusWithoutADaemonSaysThereIsNoLeader) {
    auto [code, out] = run_cli({"--config", write_config(Settings{}).string(), "status"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("Leader:       none"), std::string::npos) << out;
    EXPECT_NE(out.find("Runs:         none yet"), std::string::npos) << out;
}

TEST_F(Daemon, StatusOnAnOldSchemaSaysItNeedsMigrationAndARunMigratesIt) {
    // The previous release's schema (version 2), never migrated by this one: its run table
    // lacks columns this release reads.
    exec(previous_release_schema_sql(schema));
    exec("INSERT INTO " + schema + ".run (mode, phase, status) VALUES ('full', 'done', 'succeeded')");
    const auto config = write_config(Settings{});

    auto [code, out] = run_cli({"--config", config.string(), "status", "--json"});
    ASSERT_EQ(code, 0) << out;
    auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["schema_version"], 2) << out;
    ASSERT_TRUE(j.contains("migration_needed")) << out;
    EXPECT_NE(j["migration_needed"].get<std::string>().find("is at version 2"), std::string::npos) << out;
    EXPECT_TRUE(j["runs"].empty()) << out;
    auto [tcode, text] = run_cli({"--config", config.string(), "status"});
    EXPECT_EQ(tcode, 0) << text;
    EXPECT_NE(text.find("Migration:    schema " + schema + " is at version 2"), std::string::npos) << text;

    add_rows(1, 2, "alpha");
    auto [rcode, rout] = run_cli({"--config", config.string(), "run", "--once"});
    EXPECT_EQ(rcode, 0) << rout;
    auto [code2, out2] = run_cli({"--config", config.string(), "status", "--json"});
    ASSERT_EQ(code2, 0) << out2;
    auto j2 = nlohmann::json::parse(out2);
    EXPECT_FALSE(j2.contains("migration_needed")) << out2;
    EXPECT_EQ(j2["runs"].size(), 2u) << out2;
}

TEST_F(Daemon, CheckPassesWithAGoodConfigAndNamesWhatIsWrong) {
    auto good = write_config(Settings{});
    auto [code, out] = run_cli({"--config", good.string(), "check"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("all checks passed"), std::string::npos) << out;

    ::setenv("CDP_SYNC_DAEMON_TEST_TOKEN", "wrong-token", 1);
    Settings bad;
    bad.dsn = "host=127.0.0.1 port=1 dbname=nothing connect_timeout=2";
    auto path = write_config(bad, "bad.yaml");
    {
        auto [bcode, bout] = run_cli({"--config", path.string(), "check"});
        ::setenv("CDP_SYNC_DAEMON_TEST_TOKEN", kDaemonToken, 1);
        EXPECT_EQ(bcode, 1) << bout;
        EXPECT_NE(bout.find("FAIL  cannot connect to PostgreSQL"), std::string::npos) << bout;
        EXPECT_NE(bout.find("FAIL  CDP call failed"), std::string::npos) << bout;
    }
    std::ofstream(dir / "broken.yaml") << "cdp:\n  rate_limit_qps: fast\n";
    auto [ccode, cout_] = run_cli({"--config", (dir / "broken.yaml").string(), "check"});
    EXPECT_EQ(ccode, 2) << cout_;
    EXPECT_NE(cout_.find("rate_limit_qps"), std::string::npos) << cout_;
}

// check accepts exactly what a run accepts: a trailing semicolon, a third column in the
// memberships, desired_groups with its name alone (check used to demand three columns).
TEST_F(Daemon, CheckAcceptsTheQueriesARunAccepts) {
    add_rows(1, 2, "alpha");
    exec("CREATE TABLE " + src + ".g (name text)");
    exec("INSERT INTO " + src + ".g VALUES ('alpha')");
    const auto path = write_config(Settings{});
    std::string text = read_file(path);
    const std::string from = "desired_memberships: \"SELECT customer_id, group_name FROM " + src + ".m\"";
    ASSERT_NE(text.find(from), std::string::npos) << text;
    text.replace(text.find(from), from.size(),
                 "desired_memberships: \"SELECT customer_id, group_name, 'note' AS note FROM " + src + ".m;\"\n"
                 "  desired_groups: \"SELECT name FROM " + src + ".g;\"");
    std::ofstream(path) << text;

    auto [code, out] = run_cli({"--config", path.string(), "check"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("ok    database.desired_groups runs as a sync would run it"), std::string::npos) << out;
    auto [run_code, run_out] = run_cli({"--config", path.string(), "run", "--once"});
    EXPECT_EQ(run_code, 0) << run_out;
    EXPECT_EQ(members("alpha"), 2u);

    // And refuses what a run refuses: memberships with one column.
    text.replace(text.find("SELECT customer_id, group_name, 'note' AS note"),
                 std::string("SELECT customer_id, group_name, 'note' AS note").size(), "SELECT customer_id");
    std::ofstream(path) << text;
    auto [bad_code, bad_out] = run_cli({"--config", path.string(), "check"});
    EXPECT_EQ(bad_code, 1) << bad_out;
    EXPECT_NE(bad_out.find("FAIL  database.desired_memberships does not run"), std::string::npos) << bad_out;
    auto [bad_run, bad_run_out] = run_cli({"--config", path.string(), "run", "--once"});
    EXPECT_EQ(bad_run, 1) << bad_run_out;
}

TEST_F(Daemon, CheckConfirmsTheMemberIdentityAndNamesAWrongField) {
    add_rows(1, 3, "alpha");
    auto good = write_config(Settings{});
    auto [rcode, rout] = run_cli({"--config", good.string(), "resync"});
    ASSERT_EQ(rcode, 0) << rout;
    sim::Quirks q;
    q.read.customer_id_records = true;  // `id` is an internal row id, `customerId` the customer
    server->state().set_quirks(q);

    auto wrong = write_config(Settings{}, "wrong.yaml");
    std::string text = read_file(wrong);
    text.replace(text.find("cdp:\n"), 5, "cdp:\n  customer_id_field: id\n");
    std::ofstream(wrong) << text;
    auto [wcode, wout] = run_cli({"--config", wrong.string(), "check"});
    EXPECT_EQ(wcode, 1) << wout;
    EXPECT_NE(wout.find("FAIL  member identity mismatch: the customer id was read from field 'id'"), std::string::npos)
        << wout;

    auto [code, out] = run_cli({"--config", good.string(), "check"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("ok    member identity confirmed: customer ids read from field 'customerId'"), std::string::npos)
        << out;
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".identity_confirmation WHERE field = 'auto'"), 1);
}

}  // namespace
}  // namespace cdpsync::testing
