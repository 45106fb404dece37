// The write side against a CDP that behaves as the API document allows (simulator write
// quirks): outages with unknown messages, a cap on customerGroupIdList, refusals of writes
// already applied, groups cdp-sync does not manage. Each ends with the CDP equal to the
// database and no write applied twice.
#include <map>
#include <tuple>

#include "store/session.hpp"
#include "sync/steps.hpp"
#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

using Rows = std::vector<std::pair<int64_t, std::string>>;

class WriteSideTest : public SyncTest {
protected:
    void set_write_quirks(const sim::WriteQuirks& w) {
        sim::Quirks q = server->state().quirks();
        q.write = w;
        server->state().set_quirks(q);
    }
    // Membership writes the simulator applied more than once (same endpoint, customer, ids).
    int64_t applied_twice() {
        std::map<std::tuple<std::string, int64_t, std::vector<int64_t>>, int> n;
        for (const auto& e : server->state().write_log())
            if (e.code == 0 && e.customer_id != 0) ++n[{e.endpoint, e.customer_id, e.group_ids}];
        int64_t twice = 0;
        for (const auto& [k, c] : n) twice += c > 1 ? c - 1 : 0;
        return twice;
    }
    // `rows` desired and resynced against a CDP taking at most 2 groups per call: converged,
    // no write applied twice.
    sync::RunReport resync_under_a_list_cap_of_two(const Rows& rows) {
        desire(rows);
        sim::WriteQuirks w;
        w.max_groups_per_call = 2;
        set_write_quirks(w);
        auto r = resync();
        EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
        expect_converged(rows);
        EXPECT_EQ(applied_twice(), 0);
        return r;
    }
    int64_t refused_writes() {
        int64_t r = 0;
        for (const auto& e : server->state().write_log())
            if (e.code != 0 && e.customer_id != 0) ++r;
        return r;
    }
    std::string breaker() {
        pqxx::connection c(dsn);
        pqxx::work w(c);
        return w.exec1("SELECT breaker FROM " + schema + ".cdp_state")[0].as<std::string>();
    }
};

TEST_F(WriteSideTest, FourCyclesOfAnOutageWithAnUnknownMessageThenTheNextCycleConverges) {
    cfg.cdp.max_in_flight = 1;
    Rows rows;
    add_range(rows, 1, 30, "alpha");
    desire({});
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    desire(rows);
    sim::WriteQuirks w;
    w.outage_writes = -1;
    w.outage_msg = "服务异常，请联系管理员";  // no word the client knows
    set_write_quirks(w);

    for (int cycle = 1; cycle <= 4; ++cycle) {
        auto r = once();
        EXPECT_EQ(r.status, sync::RunStatus::failed) << "cycle " << cycle;
        EXPECT_EQ(breaker(), "open") << "cycle " << cycle;
    }
    // The first cycle stopped after kOutageAfterSameFailures, each later one probed with one op.
    EXPECT_EQ(refused_writes(), sync::kOutageAfterSameFailures + 3);
    // Nobody's op was charged for the outage, and none is marked permanent.
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".op WHERE attempts > 0 OR state = 'permanent'"), 0);

    w.outage_writes = 0;
    set_write_quirks(w);
    auto r = once();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(breaker(), "closed");
    expect_converged(rows);
    EXPECT_EQ(applied_twice(), 0);
}

TEST_F(WriteSideTest, ACustomerJoiningFiveGroupsUnderAListCapOfTwo) {
    Rows rows;
    for (const char* g : {"g1", "g2", "g3", "g4", "g5"}) rows.emplace_back(7, g);
    auto r = resync_under_a_list_cap_of_two(rows);
    EXPECT_EQ(scalar("SELECT max_groups_per_call FROM " + schema + ".cdp_state"), 2);

    // The cap learned is planned with: another customer's five groups go in lists of two.
    for (const char* g : {"g1", "g2", "g3", "g4", "g5"}) rows.emplace_back(8, g);
    desire(rows);
    const int64_t refused = refused_writes();
    const int64_t adds = endpoint_calls("customer-group-ref/customerAddGroups");
    r = once();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(refused_writes(), refused);
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerAddGroups") - adds, 3);
    expect_converged(rows);
}

// Split halves get newer ids than every op of the plan and go to the front of the queue; the
// journal slices read later (more than one slice of ops) must not queue them again.
TEST_F(WriteSideTest, HalvesOfSplitsAcrossJournalSlicesAreSentOnce) {
    Rows rows;
    for (const char* g : {"g1", "g2", "g3", "g4", "g5"}) add_range(rows, 1, 1500, g);
    resync_under_a_list_cap_of_two(rows);
    // Each customer: 5 groups refused, then 3 (split 2 | 3, then 1 | 2); no refusal repeated.
    EXPECT_EQ(refused_writes(), 2 * 1500);
}

TEST_F(WriteSideTest, AddsAndDeletesRefusedBecauseAlreadyAppliedByHandAreDone) {
    Rows rows;
    add_range(rows, 1, 10, "alpha");
    add_range(rows, 1, 5, "beta");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    sim::WriteQuirks w;
    w.refuse_already_applied = true;
    set_write_quirks(w);
    // Drift detection would see these hand edits in the member counts and re-read the groups
    // before planning (sync_read_pgtest covers that); without it the writes go out and are
    // refused, which is what this test is about.
    cfg.sync.drift_check = false;
    // By hand in the CDP: customer 9 joins beta, customer 3 leaves alpha; the database then
    // wants the same.
    server->state().add_membership(9, *group_id("beta"));
    server->state().remove_membership(3, *group_id("alpha"));
    Rows next;
    for (const auto& row : rows)
        if (!(row.first == 3 && row.second == "alpha")) next.push_back(row);
    next.emplace_back(9, "beta");
    desire(next);
    auto r = once();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(refused_writes(), 2);  // both refused, both found applied
    expect_converged(next);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".remote_member WHERE customer_id = 9 AND group_id = " +
                     std::to_string(*group_id("beta"))), 1);
    EXPECT_EQ(once().counts.ops_planned, 0);  // the mirror knows
}

TEST_F(WriteSideTest, OwnsAllKeepsAGroupMadeByHandOnTheCustomer) {
    cfg.sync.owns_all_static_groups = true;
    Rows rows = {{5, "alpha"}, {6, "alpha"}};
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    const int64_t handmade = server->state().add_group("handmade by marketing");
    server->state().add_membership(5, handmade);
    rows.emplace_back(5, "beta");
    desire(rows);
    auto r = once();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    EXPECT_TRUE(server->state().is_member(5, handmade));
    r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_TRUE(server->state().is_member(5, handmade));
}

// A cdp_sync schema of version 3 (written here with plain SQL: the version-4 additions
// dropped) holding an interrupted run with a pending op, and failed and permanent ops of an
// older run, is migrated and finished.
TEST_F(WriteSideTest, SchemaVersion3WithOpenOpsIsMigratedAndFinished) {
    Rows rows;
    add_range(rows, 1, 5, "alpha");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    const int64_t alpha = *group_id("alpha");
    for (int64_t c : {3, 4, 5}) server->state().remove_membership(c, alpha);
    server->state().clear_write_log();  // from here each add is needed once
    const std::string s = schema + ".";
    const std::string ids = "'{" + std::to_string(alpha) + "}'";
    // Back to version 3: what migrations 4 and later added is dropped.
    exec("DROP TABLE " + s + "cdp_state; ALTER TABLE " + s + "op DROP COLUMN next_attempt_at;"
         " DROP TABLE " + s + "identity_confirmation; ALTER TABLE " + s + "snapshot_cursor DROP COLUMN unreliable;"
         " ALTER TABLE " + s + "run DROP COLUMN drift_corrections;"
         " DELETE FROM " + s + "schema_version WHERE version >= 4;"
         " DELETE FROM " + s + "remote_member WHERE customer_id IN (3, 4, 5);"
         " INSERT INTO " + s + "run (id, mode, phase, status) VALUES (1000, 'incremental', 'apply', 'failed');"
         " INSERT INTO " + s + "op (run_id, customer_id, kind, group_ids, state, attempts, cdp_code, msg) VALUES"
         "  (1000, 4, 'add', " + ids + ", 'failed', 2, -1, '服务异常'),"
         "  (1000, 5, 'add', " + ids + ", 'permanent', 3, -1, '服务异常');"
         " INSERT INTO " + s + "run (id, mode, phase, status) VALUES (1001, 'incremental', 'apply', 'running');"
         " INSERT INTO " + s + "op (run_id, customer_id, kind, group_ids) VALUES (1001, 3, 'add', " + ids + ")");
    auto resumed = once();
    EXPECT_EQ(resumed.run_id, 1001);
    EXPECT_EQ(scalar("SELECT max(version) FROM " + s + "schema_version"), store::kSchemaVersion);
    EXPECT_TRUE(server->state().is_member(3, alpha));
    auto r = once();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    EXPECT_EQ(applied_twice(), 0);
}

TEST(OpBackoff, OneMinuteDoublingToOneHour) {
    using std::chrono::seconds;
    EXPECT_EQ(sync::op_backoff(1), seconds(60));
    EXPECT_EQ(sync::op_backoff(2), seconds(120));
    EXPECT_EQ(sync::op_backoff(6), seconds(1920));
    EXPECT_EQ(sync::op_backoff(7), seconds(3600));
    EXPECT_EQ(sync::op_backoff(1000), seconds(3600));
}

}  // namespace
}  // namespace cdpsync::testing
