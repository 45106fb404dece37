// A run stopped on request (RunRequest::stop, what SIGTERM sets) and sync.prune_groups.
#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

using Rows = std::vector<std::pair<int64_t, std::string>>;
using namespace std::chrono_literals;

class StopTest : public SyncTest {
protected:
    void set_latency(const std::string& endpoint, int ms) {
        sim::FaultConfig fc;
        fc.endpoints[endpoint].latency_ms = ms;
        server->faults().configure(fc);
    }

    // Runs a full resync in the background and sets its stop flag once `ready()` holds.
    sync::RunReport resync_stopped_when(const std::function<bool()>& ready) {
        std::atomic<bool> stop{false};
        auto run = std::async(std::launch::async, [&] {
            sync::Engine e(cfg);
            sync::RunRequest r;
            r.kind = sync::RunKind::full;
            r.stop = &stop;
            return e.run(r);
        });
        const auto give_up = std::chrono::steady_clock::now() + 60s;
        while (!ready() && std::chrono::steady_clock::now() < give_up &&
               run.wait_for(5ms) != std::future_status::ready) {
        }
        stop = true;
        return run.get();
    }

    int64_t adds_logged() {
        int64_t n = 0;
        for (const auto& e : server->state().write_log())
            if (e.endpoint == "customer-group-ref/customerAddGroups") ++n;
        return n;
    }
    std::string run_column(int64_t run_id, const std::string& column) {
        pqxx::connection c(dsn);
        pqxx::work w(c);
        return w.exec1("SELECT " + column + " FROM " + schema + ".run WHERE id = " + std::to_string(run_id))[0]
            .as<std::string>();
    }
};

TEST_F(StopTest, StopDuringApplyIsRecordedAsInterruptedAndTheNextRunSendsOnlyTheRest) {
    Rows rows;
    add_range(rows, 1, 300, "alpha");
    desire(rows);
    set_latency("customerAddGroups", 10);

    auto r = resync_stopped_when([&] { return adds_logged() >= 40; });
    ASSERT_EQ(r.status, sync::RunStatus::interrupted) << r.to_text();
    EXPECT_EQ(r.exit_code(), 5);
    EXPECT_EQ(run_column(r.run_id, "status"), "interrupted");
    EXPECT_EQ(run_column(r.run_id, "phase"), "apply");
    const auto& store_ops = "SELECT count(*) FROM " + schema + ".op WHERE run_id = " + std::to_string(r.run_id);
    const int64_t done = scalar(store_ops + " AND state = 'done'");
    EXPECT_GT(scalar(store_ops + " AND state = 'pending'"), 0);
    // Every call sent before the stop was answered and recorded: the journal knows them all.
    EXPECT_EQ(adds_logged(), done);
    EXPECT_LT(done, 300);

    server->faults().clear();
    auto next = resync();
    ASSERT_EQ(next.status, sync::RunStatus::succeeded) << next.to_text();
    EXPECT_TRUE(next.resumed);
    EXPECT_EQ(next.resumed_phase, store::RunPhase::apply);
    EXPECT_EQ(next.run_id, r.run_id);
    EXPECT_EQ(run_column(r.run_id, "status"), "succeeded");
    EXPECT_EQ(adds_logged(), 300);  // each customer once: nothing resent
    expect_converged(rows);
}

TEST_F(StopTest, StopDuringSnapshotKeepsItsCursorsForTheNextRun) {
    const int64_t id = server->state().add_group("alpha");
    Rows rows;
    for (int64_t c = 1; c <= 2000; ++c) server->state().add_membership(c, id);
    add_range(rows, 1, 2000, "alpha");  // 40 pages of 50, nothing to change
    desire(rows);
    set_latency("getCustomerPageByGroupId", 20);

    auto r = resync_stopped_when([&] { return member_reads() >= 10; });
    ASSERT_EQ(r.status, sync::RunStatus::interrupted) << r.to_text();
    EXPECT_EQ(run_column(r.run_id, "phase"), "snapshot");
    const int64_t saved = scalar("SELECT next_page - 1 FROM " + schema + ".snapshot_cursor WHERE snapshot_id = " +
                                 std::to_string(r.run_id));
    EXPECT_GE(saved, 5);
    EXPECT_LT(saved, 40);

    server->faults().clear();
    const int64_t reads_before = member_reads();
    auto next = resync();
    ASSERT_EQ(next.status, sync::RunStatus::succeeded) << next.to_text();
    EXPECT_TRUE(next.resumed);
    EXPECT_EQ(next.resumed_phase, store::RunPhase::snapshot);
    EXPECT_EQ(member_reads() - reads_before, 40 - saved);  // the pages left, each once
    EXPECT_EQ(write_calls(), 0);
    expect_converged(rows);
}

TEST_F(SyncTest, PruneGroupsDeletesOnlyGroupsItCreatedOnceTheDatabaseDropsThem) {
    cfg.sync.prune_groups = true;
    cfg.database.desired_groups = "SELECT name FROM " + src + ".g";
    exec("INSERT INTO " + src + ".g (name) VALUES ('alpha'), ('beta'), ('legacy')");
    const int64_t legacy = server->state().add_group("legacy");  // made by hand, not by cdp-sync
    Rows rows;
    add_range(rows, 1, 10, "alpha");
    add_range(rows, 11, 10, "beta");
    add_range(rows, 21, 5, "legacy");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    ASSERT_TRUE(group_id("beta"));

    Rows next;
    add_range(next, 1, 10, "alpha");
    desire(next);
    exec("DELETE FROM " + src + ".g WHERE name <> 'alpha'");
    auto p = plan(true);
    EXPECT_EQ(p.groups_to_delete, std::vector<std::string>{"beta"});
    EXPECT_EQ(p.prune_removes, 10);
    EXPECT_TRUE(group_id("beta")) << "plan deleted a group";

    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.groups_deleted, std::vector<std::string>{"beta"});
    EXPECT_FALSE(group_id("beta"));
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".group_map WHERE name = 'beta'"), 0);
    EXPECT_EQ(server->state().members_of(legacy).size(), 5u) << "a group it did not create was touched";
    expect_converged(next);

    EXPECT_TRUE(resync().groups_deleted.empty());  // nothing left to delete
}

TEST_F(SyncTest, PruneGroupsIsGuardedWhenTheSourceSuddenlyNamesNoGroup) {
    cfg.sync.prune_groups = true;
    cfg.database.desired_groups = "SELECT name FROM " + src + ".g";
    exec("INSERT INTO " + src + ".g (name) VALUES ('alpha')");
    Rows rows;
    add_range(rows, 1, 10, "alpha");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);

    desire({});
    exec("DELETE FROM " + src + ".g");
    const int64_t writes = write_calls();
    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::blocked) << r.to_text();
    EXPECT_NE(r.error.find("name no group"), std::string::npos) << r.error;
    EXPECT_EQ(write_calls(), writes);
    ASSERT_TRUE(group_id("alpha"));
    EXPECT_EQ(server->state().members_of(*group_id("alpha")).size(), 10u);
}

TEST_F(SyncTest, WithoutAGroupListAGroupWhoseRowsVanishIsEmptiedBehindTheGuard) {
    Rows rows;
    add_range(rows, 1, 10, "alpha");
    add_range(rows, 11, 10, "beta");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);

    Rows next;
    add_range(next, 1, 10, "alpha");
    desire(next);
    cfg.sync.max_deletes = 5;
    auto blocked = resync();
    EXPECT_EQ(blocked.status, sync::RunStatus::blocked) << blocked.to_text();
    EXPECT_EQ(blocked.counts.removes, 10);
    EXPECT_EQ(server->state().members_of(*group_id("beta")).size(), 10u);

    cfg.sync.max_deletes = 500;
    auto r = once();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.counts.removes, 10);
    ASSERT_TRUE(group_id("beta")) << "the group itself stays";
    EXPECT_TRUE(server->state().members_of(*group_id("beta")).empty());
    expect_converged(next);
    EXPECT_EQ(resync().counts.ops_planned, 0);
}

}  // namespace
}  // namespace cdpsync::testing
