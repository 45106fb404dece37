// PostgreSQL stopped (fast shutdown: every session terminated) and started again while the
// daemon is in the middle of applying a plan. A throwaway cluster of this test's own
// (scripts/pg-cluster.sh); the idle-daemon case is tests/daemon/pg_restart_pgtest.cpp.
#include "daemon/daemon_fixture.hpp"
#include "faults/fault_ledger.hpp"
#include "support/shell.hpp"
#include "sync/steps.hpp"

namespace cdpsync::testing::faults {
namespace {

TEST_F(DaemonTest, PostgresRestartedMidApply) {
    const std::string script = std::string(CDP_SYNC_SOURCE_DIR) + "/scripts/pg-cluster.sh";
    const auto cluster = dir / "pg";
    const std::string port = std::to_string(free_port());
    const std::string started = sh(script + " start " + cluster.string() + " " + port + " 2>&1");
    const std::string other = started.substr(started.rfind('\n') == std::string::npos ? 0 : started.rfind('\n') + 1);
    ASSERT_NE(other.find("port=" + port), std::string::npos) << started;
    struct Stop {
        std::string cmd;
        ~Stop() { sh(cmd); }
    } stop{script + " stop " + cluster.string()};

    exec("CREATE SCHEMA " + src + "; CREATE TABLE " + src + ".m (customer_id bigint, group_name text)", other);
    Rows rows;
    add_rows(1, 400, "restart-a", other);
    add_rows(301, 400, "restart-b", other);
    for (int64_t c = 1; c <= 400; ++c) rows.emplace_back(c, "restart-a");
    for (int64_t c = 301; c <= 700; ++c) rows.emplace_back(c, "restart-b");
    const int64_t planned = 700;  // one customerAddGroups per customer

    Settings s;
    s.dsn = other;
    s.qps = 150;  // the apply takes about 5 s
    auto& d = start_daemon(write_config(s));
    auto done = [&] {
        try {
            return scalar("SELECT count(*) FROM " + schema + ".op WHERE state = 'done'", other);
        } catch (const std::exception&) {
            return int64_t{0};
        }
    };
    ASSERT_TRUE(eventually([&] { return done() >= 150; }, 30s)) << log_text();

    // Stop PostgreSQL mid-apply, keep it down 2 s, start it again.
    const auto stopped = std::chrono::system_clock::now();
    sh(script + " stop " + cluster.string());
    const int64_t sent_at_stop = static_cast<int64_t>(server->state().write_log().size());
    ASSERT_LT(sent_at_stop, planned) << "the apply had finished before PostgreSQL stopped";
    std::this_thread::sleep_for(2s);
    EXPECT_TRUE(d.running()) << "the daemon exited while PostgreSQL was down";
    const std::string restarted = sh(script + " start " + cluster.string() + " " + port + " 2>&1");
    ASSERT_NE(restarted.find("port=" + port), std::string::npos) << restarted;
    const auto back = std::chrono::system_clock::now();

    const bool converged = eventually([&] { return lost_ops(server->state(), rows) == 0; }, 60s);
    EXPECT_TRUE(converged) << log_text();
    // Let the journal record the last outcomes.
    EXPECT_TRUE(eventually([&] { return done() == planned; }, 20s)) << done() << " of " << planned;
    EXPECT_TRUE(d.running());

    const double stopped_s =
        std::chrono::duration<double>(stopped.time_since_epoch()).count();
    const auto log = server->state().write_log();
    Ledger ledger(3000);  // the daemon config's timeout_ms
    ledger.after_outage(log, back,
                        journal_keys(other, schema, "state = 'done' AND updated_at > to_timestamp(" +
                                                        std::to_string(stopped_s) + ")"));
    const auto [writes, lost, dup] = check_end_state(ledger, log, server->state(), rows);
    EXPECT_LE(writes.in_flight, 4 + sync::uncommitted_outcome_cap(4))
        << "more writes resent than max_in_flight plus the outcomes not committed yet";

    record({"PostgreSQL stopped 2 s and restarted mid-apply (daemon)",
            "restart after " + std::to_string(sent_at_stop) + " of " + std::to_string(planned) + " writes",
            run_retries(other, schema), converged && lost == 0 && dup == 0 && d.running(), lost, dup,
            writes.in_flight});
}

}  // namespace
}  // namespace cdpsync::testing::faults
