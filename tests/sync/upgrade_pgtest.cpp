// Upgrades keep data: a cdp_sync schema exactly as the previous release (0.1.0, schema
// version 2) left it, with an interrupted run's pending ops and an older run's failed and
// permanent ops, is migrated by this release and its work finished, nothing lost and
// nothing sent twice.
#include <fstream>
#include <map>
#include <sstream>

#include "store/schema.hpp"
#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

class UpgradeTest : public SyncTest {
protected:
    // The previous release's schema, from its frozen DDL.
    void create_v2_schema() { exec(previous_release_schema_sql(schema)); }

    void v2_op(int64_t run, int64_t customer, int64_t group, const std::string& state, int attempts,
               const std::string& msg = "") {
        exec("INSERT INTO " + schema + ".op (run_id, customer_id, kind, group_ids, state, attempts, msg)"
             " VALUES (" + std::to_string(run) + ", " + std::to_string(customer) + ", 'add', ARRAY[" +
             std::to_string(group) + "]::bigint[], '" + state + "', " + std::to_string(attempts) + ", " +
             (msg.empty() ? std::string("NULL") : "'" + msg + "'") + ")");
    }

    // Adds of (customer, group) in the simulator's write log, counted.
    std::map<std::pair<int64_t, int64_t>, int> adds_sent() {
        std::map<std::pair<int64_t, int64_t>, int> out;
        for (const auto& w : server->state().write_log())
            if (w.endpoint.find("customerAddGroups") != std::string::npos && w.code == 0)
                for (int64_t g : w.group_ids) ++out[{w.customer_id, g}];
        return out;
    }
};

TEST_F(UpgradeTest, PreviousReleasesInterruptedRunAndFailedOpsAreMigratedAndFinished) {
    auto& cdp = server->state();
    const int64_t a = cdp.add_group("upgrade-a");
    const int64_t b = cdp.add_group("upgrade-b");
    for (int64_t c = 1; c <= 10; ++c) cdp.add_membership(c, a);
    std::vector<std::pair<int64_t, std::string>> rows;
    add_range(rows, 1, 30, "upgrade-a");
    add_range(rows, 1, 5, "upgrade-b");
    desire(rows);

    create_v2_schema();
    const std::string s = schema;
    exec("INSERT INTO " + s + ".group_map (name, group_id, snapshot_at) VALUES ('upgrade-a', " + std::to_string(a) +
         ", now()), ('upgrade-b', " + std::to_string(b) + ", now())");
    exec("INSERT INTO " + s + ".remote_member SELECT " + std::to_string(a) + ", c FROM generate_series(1, 10) c");
    // An older run whose ops failed: one refused for a passing reason, one marked permanent by
    // the old three-strikes rule.
    exec("INSERT INTO " + s + ".run (id, mode, phase, status) VALUES (1, 'full', 'done', 'failed')");
    v2_op(1, 21, a, "failed", 1, "系统繁忙");
    v2_op(1, 22, a, "permanent", 3, "操作失败");
    // The run a kill -9 interrupted mid-apply: 15 ops pending, one done.
    exec("INSERT INTO " + s + ".run (id, mode, phase, status, pid) VALUES (2, 'full', 'apply', 'running', 999999)");
    for (int64_t c = 11; c <= 20; ++c) v2_op(2, c, a, "pending", 0);
    for (int64_t c = 1; c <= 5; ++c) v2_op(2, c, b, "pending", 0);
    cdp.add_membership(23, a);
    exec("INSERT INTO " + s + ".remote_member VALUES (" + std::to_string(a) + ", 23)");
    v2_op(2, 23, a, "done", 1);
    exec("SELECT setval(pg_get_serial_sequence('" + s + ".run', 'id'), 2)");

    const auto first = resync();
    EXPECT_TRUE(first.resumed);
    EXPECT_EQ(first.run_id, 2);
    EXPECT_EQ(scalar("SELECT max(version) FROM " + s + ".schema_version"), store::kSchemaVersion);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + s + ".op WHERE run_id = 2 AND state = 'pending'"), 0);

    const auto second = resync();
    EXPECT_EQ(second.status, sync::RunStatus::succeeded) << second.error;
    expect_converged(rows);

    // Every add the database wants was sent exactly once; the one done before the upgrade
    // (customer 23) and the memberships the CDP already held were not sent at all.
    const auto sent = adds_sent();
    for (int64_t c = 11; c <= 30; ++c) {
        if (c == 23) continue;
        EXPECT_EQ((sent.count({c, a}) ? sent.at({c, a}) : 0), 1) << "customer " << c;
    }
    for (int64_t c = 1; c <= 5; ++c) EXPECT_EQ((sent.count({c, b}) ? sent.at({c, b}) : 0), 1) << "customer " << c;
    EXPECT_EQ(sent.count({23, a}), 0u);
    for (int64_t c = 1; c <= 10; ++c) EXPECT_EQ(sent.count({c, a}), 0u) << "customer " << c;
}

}  // namespace
}  // namespace cdpsync::testing
