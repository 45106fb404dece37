// A full run reads the groups it already knows while its source loads: the source query is
// held on an advisory lock the test owns, and the member reads are seen to happen (and the
// known groups' snapshot to finish) while the source query still waits for it. A source that
// fails during those reads stops them and the run, before any write.
#include <unistd.h>

#include <chrono>
#include <thread>

#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

// The gate: an advisory lock key of this process (tests of other processes run beside it on
// the same database): 7301 in the high half, the pid in the low one.
const int64_t kGateLock = (int64_t{7301} << 32) | static_cast<int64_t>(::getpid());

class OverlapTest : public SyncTest {
protected:
    using Rows = std::vector<std::pair<int64_t, std::string>>;

    void SetUp() override {
        SyncTest::SetUp();
        if (dsn.empty()) return;
        // The source waits for the gate; the failing one raises once through it.
        exec("CREATE FUNCTION " + src + ".gate() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
             " PERFORM pg_advisory_xact_lock_shared(" + std::to_string(kGateLock) + "); RETURN true; END $$;"
             "CREATE FUNCTION " + src + ".gate_fail() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
             " PERFORM pg_advisory_xact_lock_shared(" + std::to_string(kGateLock) + ");"
             " RAISE EXCEPTION 'the source broke'; END $$");
    }

    // Three groups of 400 the CDP and the group map know (one resync), in `rows`.
    Rows known_groups() {
        Rows rows;
        for (const std::string name : {"k1", "k2", "k3"}) add_range(rows, 1, 400, name);
        desire(rows);
        EXPECT_EQ(resync().status, sync::RunStatus::succeeded);
        return rows;
    }

    void gate_source(const std::string& function) {
        cfg.database.desired_memberships = "SELECT customer_id, group_name FROM " + src + ".m WHERE " + src + "." +
                                           function + "()";
    }

    // The source query of the run is waiting for the gate (held by `gate`).
    int64_t source_waiting() {
        return scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = 7301"
                      " AND objid = " + std::to_string(::getpid()));
    }

    std::string running_phase() {
        pqxx::connection c(dsn);
        pqxx::work w(c);
        auto r = w.exec("SELECT phase FROM " + schema + ".run WHERE status = 'running'");
        return r.empty() ? "" : r[0][0].as<std::string>();
    }

    template <class Condition>
    bool wait_until(Condition done) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (std::chrono::steady_clock::now() < until) {
            if (done()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }
};

TEST_F(OverlapTest, TheKnownGroupsAreReadWhileTheSourceStillLoads) {
    Rows rows = known_groups();
    rows.emplace_back(1500, "k3");  // an add only: the run needs no identity read
    desire(rows);
    gate_source("gate");
    const int64_t reads_before = member_reads();

    pqxx::connection gate(dsn);
    pqxx::nontransaction(gate).exec("SELECT pg_advisory_lock(" + std::to_string(kGateLock) + ")");
    sync::RunReport r;
    std::thread run([&] { r = resync(); });
    const bool read_while_waiting = wait_until([&] {
        return source_waiting() == 1 &&
               scalar("SELECT count(*) FROM " + schema + ".snapshot_cursor WHERE done") == 3;
    });
    // Taken before the gate opens: what was read while the source could not have finished.
    const int64_t reads_while_waiting = member_reads() - reads_before;
    const int64_t still_waiting = source_waiting();
    const std::string phase = running_phase();
    pqxx::nontransaction(gate).exec("SELECT pg_advisory_unlock(" + std::to_string(kGateLock) + ")");
    run.join();

    EXPECT_TRUE(read_while_waiting) << "the known groups were not read while the source query waited";
    EXPECT_EQ(still_waiting, 1);
    EXPECT_EQ(phase, "source");
    EXPECT_GE(reads_while_waiting, 3 * 8);  // 400 members, pages of 50
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    // Nothing was read again once the source was there.
    EXPECT_EQ(member_reads() - reads_before, reads_while_waiting);
    EXPECT_EQ(r.counts.adds, 1);
    EXPECT_EQ(r.counts.removes, 0);
    expect_converged(rows);
    // Both phases report their own time, and the time they shared.
    ASSERT_EQ(r.phase_seconds.count("overlap"), 1u);
    EXPECT_GT(r.phase_seconds.at("overlap"), 0.0);
    EXPECT_GE(r.phase_seconds.at("source") + 1e-9, r.phase_seconds.at("overlap"));
    EXPECT_NE(r.summary_line().find("overlapped"), std::string::npos) << r.summary_line();
}

TEST_F(OverlapTest, ASourceFailingDuringTheReadsStopsThemAndTheRunBeforeAnyWrite) {
    known_groups();
    Rows changed;
    for (const std::string name : {"k1", "k2", "k3"}) add_range(changed, 1, 390, name);
    desire(changed);  // would remove 30 memberships, were the source read
    gate_source("gate_fail");
    cfg.cdp.page_size = 10;       // 120 pages to read, at 20 a second
    cfg.cdp.rate_limit_qps = 20;
    const int64_t reads_before = member_reads();
    const int64_t writes_before = write_calls();

    pqxx::connection gate(dsn);
    pqxx::nontransaction(gate).exec("SELECT pg_advisory_lock(" + std::to_string(kGateLock) + ")");
    sync::RunReport r;
    std::thread run([&] { r = resync(); });
    const bool reading = wait_until([&] { return source_waiting() == 1 && member_reads() - reads_before >= 2; });
    pqxx::nontransaction(gate).exec("SELECT pg_advisory_unlock(" + std::to_string(kGateLock) + ")");
    run.join();

    ASSERT_TRUE(reading) << "no member read while the source query waited";
    EXPECT_EQ(r.status, sync::RunStatus::failed);
    EXPECT_NE(r.error.find("the source broke"), std::string::npos) << r.error;
    EXPECT_EQ(write_calls(), writes_before);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".op WHERE run_id = " + std::to_string(r.run_id)), 0);
    // The reads stopped with the source, far from the 120 pages the groups hold.
    const int64_t reads = member_reads() - reads_before;
    EXPECT_LT(reads, 60) << reads << " member pages read";
    // The calls spent on them are in the run's count.
    EXPECT_GE(r.counts.calls, reads);
    // The next run (source fixed) reads and converges.
    cfg.database.desired_memberships = "SELECT customer_id, group_name FROM " + src + ".m";
    cfg.cdp.rate_limit_qps = 0;
    auto next = resync(true);
    ASSERT_EQ(next.status, sync::RunStatus::succeeded) << next.to_text();
    expect_converged(changed);
}

TEST_F(OverlapTest, AGroupTheSourceNoLongerNamesIsReadEarlyButLeftOutOfThePlan) {
    cfg.database.desired_groups = "SELECT name FROM " + src + ".g";
    exec("INSERT INTO " + src + ".g (name) VALUES ('k1'), ('k2'), ('k3')");
    Rows rows = known_groups();
    // k2 leaves the source (group list and rows): it is no longer managed, and its members
    // stay as they are in the CDP.
    exec("DELETE FROM " + src + ".g WHERE name = 'k2'");
    Rows kept;
    for (const auto& row : rows)
        if (row.second != "k2") kept.push_back(row);
    desire(kept);
    const int64_t k2 = *group_id("k2");
    server->state().add_membership(1999, k2);  // by hand

    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    // The cost: k2 was read before the source said it was gone (the mirror saw the hand edit).
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".remote_member WHERE customer_id = 1999 AND group_id = " +
                     std::to_string(k2)),
              1);
    // And nothing else: no write for it, no error.
    EXPECT_EQ(r.counts.removes, 0);
    EXPECT_EQ(r.counts.adds, 0);
    EXPECT_EQ(server->state().members_of(k2).size(), 401u);
    for (const auto& g : r.plan.groups) EXPECT_NE(g.name, "k2");
    EXPECT_TRUE(r.group_errors.empty());
    expect_converged(kept);
}

}  // namespace
}  // namespace cdpsync::testing
