// PostgreSQL restarted under a running daemon: a throwaway cluster of this test's own
// (scripts/pg-cluster.sh, its own port), restarted with pg_ctl while the daemon leads.
#include "daemon_fixture.hpp"
#include "support/shell.hpp"

namespace cdpsync::testing {
namespace {

TEST_F(DaemonTest, PostgresRestartedUnderARunningDaemon) {
    const std::string script = std::string(CDP_SYNC_SOURCE_DIR) + "/scripts/pg-cluster.sh";
    const auto cluster = dir / "pg";
    const std::string port = std::to_string(free_port());
    const std::string other = sh(script + " start " + cluster.string() + " " + port + " 2>&1 | tail -1");
    ASSERT_NE(other.find("port=" + port), std::string::npos) << other;
    struct Stop {
        std::string cmd;
        ~Stop() { sh(cmd); }
    } stop{script + " stop " + cluster.string()};

    exec("CREATE SCHEMA " + src + "; CREATE TABLE " + src + ".m (customer_id bigint, group_name text)", other);
    add_rows(1, 5, "alpha", other);
    Settings s;
    s.dsn = other;
    auto& d = start_daemon(write_config(s));
    ASSERT_TRUE(eventually([&] { return members("alpha") == 5; }, 20s)) << log_text();

    // Restart the server under the daemon (fast shutdown: every session is terminated).
    sh(script + " stop " + cluster.string());
    std::this_thread::sleep_for(3s);
    EXPECT_TRUE(d.running()) << "the daemon exited while PostgreSQL was down";
    ASSERT_NE(sh(script + " start " + cluster.string() + " " + port + " 2>&1 | tail -1").find("port="), std::string::npos);

    add_rows(100, 3, "alpha", other);
    ASSERT_TRUE(eventually([&] { return is_member(102, "alpha"); }, 40s)) << log_text();
    EXPECT_TRUE(d.running());
    EXPECT_EQ(leader_pid(other), d.pid());
    EXPECT_GE(count_of(log_text(), "lost the leader lock"), 1) << log_text();
    // Each failing state is logged once, and its recovery once (the file is flushed every second).
    EXPECT_TRUE(eventually([&] { return count_of(log_text(), "] PostgreSQL (") == 2; }, 3s)) << log_text();
    EXPECT_EQ(count_of(log_text(), ") failed: "), 1) << log_text();
    EXPECT_EQ(count_of(log_text(), ") is back after"), 1) << log_text();
}

}  // namespace
}  // namespace cdpsync::testing
