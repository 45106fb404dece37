// The sync engine against a real PostgreSQL and the in-process simulator.
#include <thread>

#include "store/session.hpp"
#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

using Rows = std::vector<std::pair<int64_t, std::string>>;

Rows three_groups() {
    Rows rows;
    SyncTest::add_range(rows, 1, 120, "alpha");
    SyncTest::add_range(rows, 50, 100, "beta");
    SyncTest::add_range(rows, 200, 30, "gamma");
    return rows;
}

TEST_F(SyncTest, ConvergesFromEmptyAndSecondResyncWritesNothing) {
    auto rows = three_groups();
    desire(rows);
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.counts.groups_created, 3);
    EXPECT_EQ(r.counts.adds, 250);
    EXPECT_EQ(r.counts.removes, 0);
    // One customerAddGroups per customer: customers 1..149 and 200..229.
    EXPECT_EQ(r.counts.ops_planned, 149 + 30);
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerAddGroups"), 149 + 30);
    expect_converged(rows);

    const int64_t writes = write_calls();
    auto again = resync();
    ASSERT_EQ(again.status, sync::RunStatus::succeeded) << again.to_text();
    EXPECT_EQ(write_calls(), writes);
    EXPECT_EQ(again.counts.ops_planned, 0);
    // The group map and run history are in the schema.
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".group_map WHERE group_id IS NOT NULL"), 3);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".run WHERE status = 'succeeded'"), 2);
}

TEST_F(SyncTest, FullResyncCorrectsMembershipsChangedByHandInTheCdp) {
    auto rows = three_groups();
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    auto alpha = *group_id("alpha");
    auto beta = *group_id("beta");
    auto& st = server->state();
    st.add_membership(500, alpha);     // added by hand: to remove
    st.add_membership(501, alpha);     // added by hand: to remove
    st.remove_membership(10, alpha);   // removed by hand: to add back
    st.remove_membership(60, beta);    // removed by hand: to add back (same customer as alpha? no: 60 in both)
    st.remove_membership(60, alpha);
    const int64_t writes = write_calls();

    // Without sync.drift_check the incremental cycle cannot see changes made in the CDP: it
    // writes nothing (with it, sync_read_pgtest's drift test).
    cfg.sync.drift_check = false;
    auto inc = once();
    ASSERT_EQ(inc.status, sync::RunStatus::succeeded) << inc.to_text();
    EXPECT_EQ(write_calls(), writes);

    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.counts.adds, 3);
    EXPECT_EQ(r.counts.removes, 2);
    // Customer 60 gets one call for both groups; 10 one; 500 and 501 one removal each.
    EXPECT_EQ(write_calls() - writes, 4);
    expect_converged(rows);
    EXPECT_FALSE(st.is_member(500, alpha));
}

TEST_F(SyncTest, PlanChangesNothingAndItsCountsAreTheRunsCounts) {
    auto rows = three_groups();
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    // Drift in the CDP and in the database.
    auto alpha = *group_id("alpha");
    server->state().add_membership(700, alpha);
    rows.erase(rows.begin(), rows.begin() + 5);  // alpha 1..5 go
    add_range(rows, 300, 7, "beta");
    add_range(rows, 1, 3, "delta");              // a new group
    desire(rows);

    const auto stats_before = server->stats();
    auto p = plan(true);
    ASSERT_TRUE(p.error.empty()) << p.error;
    EXPECT_EQ(server->stats()["write_calls"], stats_before["write_calls"]);
    EXPECT_EQ(p.groups_to_create, std::vector<std::string>{"delta"});
    EXPECT_EQ(p.plan.adds, 10);
    EXPECT_EQ(p.plan.removes, 6);
    EXPECT_GT(p.member_pages_read, 0);
    EXPECT_FALSE(group_id("delta"));

    const int64_t writes = write_calls();
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.counts.adds, p.plan.adds);
    EXPECT_EQ(r.counts.removes, p.plan.removes);
    EXPECT_EQ(r.counts.ops_planned, p.plan.write_calls());
    EXPECT_EQ(write_calls() - writes, p.calls());
    expect_converged(rows);

    // plan without --full after convergence: nothing to do, no member reads.
    const int64_t reads = member_reads();
    auto idle = plan(false);
    EXPECT_EQ(idle.plan.write_calls(), 0);
    EXPECT_EQ(member_reads(), reads);
}

TEST_F(SyncTest, IncrementalCycleMakesOnlyTheNeededWritesAndNoMemberReads) {
    auto rows = three_groups();
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    const int64_t reads = member_reads();
    const int64_t writes = write_calls();
    rows.erase(std::remove(rows.begin(), rows.end(), std::make_pair(int64_t{7}, std::string("alpha"))), rows.end());
    rows.emplace_back(900, "alpha");
    rows.emplace_back(900, "gamma");
    rows.emplace_back(901, "beta");
    desire(rows);

    auto p = plan(false);
    auto r = once();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    // The first removal ever confirms the member identity first: one member page sampled,
    // once (sync/identity.hpp). Otherwise no member reads.
    EXPECT_EQ(member_reads(), reads + 1);
    EXPECT_EQ(r.counts.adds, 3);
    EXPECT_EQ(r.counts.removes, 1);
    EXPECT_EQ(write_calls() - writes, 3);  // 900 (two groups, one call), 901, and the removal of 7
    EXPECT_EQ(p.plan.write_calls(), 3);
    expect_converged(rows);
}

TEST_F(SyncTest, AdditiveModeNeverRemoves) {
    cfg.sync.mode = config::SyncMode::additive;
    auto rows = three_groups();
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    auto alpha = *group_id("alpha");
    server->state().add_membership(777, alpha);
    desire({{1, "alpha"}, {2, "alpha"}, {1000, "beta"}});
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.counts.removes, 0);
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerDeleteGroups"), 0);
    EXPECT_TRUE(server->state().is_member(777, alpha));
    EXPECT_TRUE(server->state().is_member(1000, *group_id("beta")));
}

TEST_F(SyncTest, OwnsAllModeSendsOneUpdateGroupsPerChangedCustomer) {
    cfg.sync.owns_all_static_groups = true;
    auto rows = three_groups();
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerAddGroups"), 0);
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerUpdateGroups"), 149 + 30);
    expect_converged(rows);

    // Customer 60: leaves beta, joins gamma; customer 1 leaves alpha (its only group).
    Rows next;
    for (const auto& row : rows)
        if (!(row.first == 60 && row.second == "beta") && !(row.first == 1 && row.second == "alpha"))
            next.push_back(row);
    next.emplace_back(60, "gamma");
    desire(next);
    const int64_t updates = endpoint_calls("customer-group-ref/customerUpdateGroups");
    auto r = once();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerUpdateGroups") - updates, 1);
    // An empty list is never sent as an update: customer 1 gets a delete.
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerDeleteGroups"), 1);
    expect_converged(next);
    EXPECT_TRUE(server->state().groups_of(1, cdp::kStaticGroup).empty());
}

TEST_F(SyncTest, DeleteGuardStopsAnEmptiedGroupUntilForced) {
    cfg.sync.max_deletes = 50;
    cfg.database.desired_groups = "SELECT name, description FROM " + src + ".g";
    exec("INSERT INTO " + src + ".g VALUES ('alpha', 'the alpha group'), ('beta', NULL), ('gamma', NULL)");
    auto rows = three_groups();
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    EXPECT_EQ(server->state().group(*group_id("alpha"))->description, "the alpha group");

    // The classic wipe: the memberships query suddenly returns nothing for alpha.
    Rows next;
    for (const auto& row : rows)
        if (row.second != "alpha") next.push_back(row);
    desire(next);
    const int64_t writes = write_calls();
    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::blocked) << r.to_text();
    EXPECT_EQ(r.exit_code(), 3);
    EXPECT_EQ(write_calls(), writes);
    EXPECT_EQ(r.counts.removes, 120);
    EXPECT_FALSE(r.guard_sample.empty());
    EXPECT_NE(r.error.find("max_deletes"), std::string::npos);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".op WHERE run_id = " + std::to_string(r.run_id)), 0);
    EXPECT_EQ(server->state().members_of(*group_id("alpha")).size(), 120u);

    auto inc = once();
    EXPECT_EQ(inc.status, sync::RunStatus::blocked);

    auto forced = resync(true);
    ASSERT_EQ(forced.status, sync::RunStatus::succeeded) << forced.to_text();
    EXPECT_TRUE(server->state().members_of(*group_id("alpha")).empty());
}

TEST_F(SyncTest, BadRowsAreSkippedCountedAndReportedDuplicatesCountOnce) {
    exec("INSERT INTO " + src + ".m VALUES (1, 'alpha'), (1, 'alpha'), (2, 'alpha'), (NULL, 'alpha'),"
         " (-5, 'alpha'), (0, 'beta'), (3, NULL), (4, ''), (5, '   '), (6, repeat('x', 65)),"
         " (7, E'tab\\there'), (8, ' padded'), (9, 'beta')");
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.counts.rows_read, 13);
    EXPECT_EQ(r.counts.rows_rejected, 9);
    EXPECT_EQ(r.counts.duplicates, 1);
    EXPECT_EQ(r.counts.adds, 3);
    EXPECT_EQ(r.source.rejected_by_reason.at("null customer id"), 1);
    EXPECT_EQ(r.source.rejected_by_reason.at("non-positive customer id"), 2);
    EXPECT_EQ(r.source.rejected_by_reason.at("null group name"), 1);
    EXPECT_EQ(r.source.rejected_by_reason.at("empty group name"), 2);
    EXPECT_EQ(r.source.rejected_by_reason.at("group name longer than 64 characters"), 1);
    EXPECT_EQ(r.source.rejected_by_reason.at("group name has control characters"), 1);
    EXPECT_EQ(r.source.rejected_by_reason.at("group name has leading or trailing spaces"), 1);
    EXPECT_FALSE(r.source.examples.empty());
    EXPECT_NE(r.to_text().find("non-positive customer id"), std::string::npos);
    expect_converged({{1, "alpha"}, {2, "alpha"}, {9, "beta"}});
    // The run row keeps the counts and examples.
    EXPECT_EQ(scalar("SELECT rows_rejected FROM " + schema + ".run WHERE id = " + std::to_string(r.run_id)), 9);
    EXPECT_EQ(scalar("SELECT jsonb_array_length(details->'source'->'examples') FROM " + schema +
                     ".run WHERE id = " + std::to_string(r.run_id)),
              static_cast<int64_t>(r.source.examples.size()));
}

TEST_F(SyncTest, SmartGroupNameIsAnErrorForThatGroupOnly) {
    server->state().add_group("smart-one", "", std::nullopt, cdp::kSmartGroup);
    Rows rows = {{1, "smart-one"}, {2, "smart-one"}, {3, "plain"}, {4, "plain"}};
    desire(rows);
    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::failed);
    ASSERT_EQ(r.group_errors.size(), 1u) << r.to_text();
    EXPECT_EQ(r.group_errors[0].name, "smart-one");
    EXPECT_NE(r.group_errors[0].error.find("smart"), std::string::npos);
    expect_converged({{3, "plain"}, {4, "plain"}});
    EXPECT_EQ(server->state().find_groups_by_name("smart-one").size(), 1u);
}

TEST_F(SyncTest, PerOpErrorsWaitTheirBackoffAndKnownPermanentOnesTheLongInterval) {
    // Customer 5000 does not exist in the CDP: refused with code -1 every time.
    Rows rows = {{1, "alpha"}, {2, "alpha"}, {5000, "alpha"}};
    desire(rows);
    // A transient failure for customer 1's call, beyond the client's 2 attempts (ops go one
    // at a time, by customer id).
    cfg.cdp.max_in_flight = 1;
    sim::ScriptedFault f;
    f.endpoint = "customerAddGroups";
    f.kind = sim::FaultKind::http_5xx;
    f.count = 2;
    server->faults().push_script(f);

    auto r1 = resync();
    EXPECT_EQ(r1.status, sync::RunStatus::failed);
    ASSERT_EQ(r1.failures.size(), 2u) << r1.to_text();
    const auto sql_state = [&](int64_t customer, int64_t run) {
        pqxx::connection c(dsn);
        pqxx::work w(c);
        auto row = w.exec1("SELECT state || ':' || attempts || ':' || coalesce(http_status, 0) || ':' ||"
                           " coalesce(cdp_code::text, '') || ':' || coalesce(msg, '') FROM " + schema +
                           ".op WHERE customer_id = " + std::to_string(customer) + " AND run_id = " + std::to_string(run));
        return row[0].as<std::string>();
    };
    const auto wait_s = [&](int64_t customer, int64_t run) {
        return scalar("SELECT coalesce(extract(epoch FROM next_attempt_at - now())::bigint, -1) FROM " + schema +
                      ".op WHERE customer_id = " + std::to_string(customer) + " AND run_id = " + std::to_string(run));
    };
    // Known permanent at once (the customer is unknown), waiting sync.permanent_retry_interval_h.
    EXPECT_EQ(sql_state(5000, r1.run_id), "permanent:1:200:-1:客户不存在");
    EXPECT_NEAR(wait_s(5000, r1.run_id), 24 * 3600, 60);
    // The transient failure (retried within the call already) waits for no backoff.
    EXPECT_EQ(sql_state(1, r1.run_id).substr(0, 13), "failed:1:503:");
    EXPECT_EQ(wait_s(1, r1.run_id), -1);

    // An incremental run sends customer 1 again, not the permanent one, whose mark it carries.
    const int64_t adds = endpoint_calls("customer-group-ref/customerAddGroups");
    auto r2 = once();
    EXPECT_EQ(r2.status, sync::RunStatus::failed);
    EXPECT_TRUE(server->state().is_member(1, *group_id("alpha")));
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerAddGroups"), adds + 1);
    EXPECT_EQ(sql_state(5000, r2.run_id), "permanent:1:200:-1:客户不存在");
    EXPECT_NE(r2.to_text().find("permanent"), std::string::npos);

    // A refusal of unknown meaning waits its backoff: 1 min after the first.
    exec("UPDATE " + schema + ".op SET state = 'failed', msg = 'x', next_attempt_at = now() + interval '50 s'"
         " WHERE customer_id = 5000 AND run_id = " + std::to_string(r2.run_id));
    auto r3 = once();
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerAddGroups"), adds + 1);
    EXPECT_EQ(sql_state(5000, r3.run_id), "failed:1:200:-1:x");
    exec("UPDATE " + schema + ".op SET next_attempt_at = now() WHERE customer_id = 5000 AND run_id = " +
         std::to_string(r3.run_id));
    auto r3b = once();
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerAddGroups"), adds + 2);
    EXPECT_EQ(sql_state(5000, r3b.run_id), "permanent:2:200:-1:客户不存在");

    // A full resync never copies a mark: the permanent one is tried again (and refused).
    auto r4 = resync();
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerAddGroups"), adds + 3);
    EXPECT_EQ(sql_state(5000, r4.run_id), "permanent:1:200:-1:客户不存在");

    // Once the row goes, the run converges.
    desire({{1, "alpha"}, {2, "alpha"}});
    auto r5 = once();
    EXPECT_EQ(r5.status, sync::RunStatus::succeeded) << r5.to_text();
}

TEST_F(SyncTest, FailingSourceQueryIsAFailedRunThatChangesNothing) {
    desire(three_groups());
    cfg.database.desired_memberships = "SELECT customer_id, group_name FROM " + src + ".no_such_table";
    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::failed);
    EXPECT_NE(r.error.find("desired_memberships"), std::string::npos) << r.error;
    // A full run lists the CDP's groups while its source loads: that read is all it made.
    EXPECT_EQ(write_calls(), 0);
    EXPECT_EQ(server->stats()["total"].get<int64_t>(), endpoint_calls("customer-group/simpleQuery"));
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".run WHERE status = 'failed' AND error LIKE '%no_such_table%'"), 1);
    // An incremental run loads its source first: no call at all.
    const int64_t calls = server->stats()["total"].get<int64_t>();
    EXPECT_EQ(once().status, sync::RunStatus::failed);
    EXPECT_EQ(server->stats()["total"].get<int64_t>(), calls);
}

TEST_F(SyncTest, MigrationsAreIdempotentAndSafeConcurrently) {
    std::vector<std::thread> threads;
    std::vector<int> versions(4);
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&, i] {
            store::Session s(dsn, schema);
            versions[i] = s.migrate();
        });
    for (auto& t : threads) t.join();
    for (int v : versions) EXPECT_EQ(v, store::kSchemaVersion);
    store::Session s(dsn, schema);
    EXPECT_EQ(s.migrate(), store::kSchemaVersion);
    EXPECT_EQ(scalar("SELECT max(version) FROM " + schema + ".schema_version"), store::kSchemaVersion);
}

TEST_F(SyncTest, SecondWriterIsRefusedWhileTheLockIsHeld) {
    desire(three_groups());
    store::Session holder(dsn, schema);
    holder.migrate();
    auto held = holder.lock_apply();
    ASSERT_TRUE(held);
    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::busy);
    EXPECT_EQ(r.exit_code(), 4);
    EXPECT_EQ(server->stats()["total"], 0);
    held.reset();
    EXPECT_EQ(resync().status, sync::RunStatus::succeeded);
}

TEST_F(SyncTest, ResyncOfOneGroupTouchesOnlyThatGroup) {
    auto rows = three_groups();
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    server->state().add_membership(800, *group_id("alpha"));
    server->state().add_membership(800, *group_id("beta"));
    sync::Engine e(cfg);
    sync::RunRequest req;
    req.only_groups = {"beta"};
    auto r = e.run(req);
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.counts.removes, 1);
    EXPECT_TRUE(server->state().is_member(800, *group_id("alpha")));
    EXPECT_FALSE(server->state().is_member(800, *group_id("beta")));
}

TEST(StoreHelpers, RedactsPasswordsInDsns) {
    EXPECT_EQ(store::redact_dsn("host=x password=secret user=u"), "host=x password=*** user=u");
    EXPECT_EQ(store::redact_dsn("host=x password='se cret' user=u"), "host=x password=*** user=u");
    EXPECT_EQ(store::redact_dsn("postgresql://u:secret@h/db"), "postgresql://u:***@h/db");
    EXPECT_EQ(store::redact_dsn("postgresql://h/db?password=secret&x=1"), "postgresql://h/db?password=***&x=1");
    EXPECT_EQ(store::redact_dsn("postgresql:///customers"), "postgresql:///customers");
}

TEST(StoreHelpers, GroupNameRulesMatchTheSqlChecks) {
    EXPECT_EQ(store::group_name_problem("ok name"), "");
    EXPECT_EQ(store::group_name_problem(""), "empty group name");
    EXPECT_EQ(store::group_name_problem("  "), "empty group name");
    EXPECT_EQ(store::group_name_problem(" x"), "group name has leading or trailing spaces");
    EXPECT_EQ(store::group_name_problem("a\tb"), "group name has control characters");
    EXPECT_EQ(store::group_name_problem(std::string(64, 'x')), "");
    EXPECT_EQ(store::group_name_problem(std::string(65, 'x')), "group name longer than 64 characters");
    // 64 CJK characters are 192 bytes but fit.
    std::string cjk;
    for (int i = 0; i < 64; ++i) cjk += "群";
    EXPECT_EQ(store::group_name_problem(cjk), "");
    EXPECT_EQ(store::parse_pg_array("{1,-2,30}"), (std::vector<int64_t>{1, -2, 30}));
    EXPECT_EQ(store::to_pg_array({4, 5}), "{4,5}");
}

}  // namespace

TEST_F(SyncTest, RunReportsItsPhaseTimesInTheSummaryAndTheRunRow) {
    auto rows = three_groups();
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    server->state().add_membership(500, *group_id("alpha"));  // by hand: the next resync reads and removes it
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(r.counts.removes, 1);
    double sum = 0;
    for (const char* phase : {"source", "groups", "snapshot", "plan", "journal", "apply"}) {
        ASSERT_EQ(r.phase_seconds.count(phase), 1u) << phase;
        EXPECT_GE(r.phase_seconds.at(phase), 0.0) << phase;
        sum += r.phase_seconds.at(phase);
        EXPECT_NE(r.summary_line().find(std::string(" ") + phase + " "), std::string::npos) << r.summary_line();
    }
    // A full run's source and first reads overlap: that time is in both phases.
    EXPECT_LE(sum - r.phase_seconds["overlap"], r.seconds);
    EXPECT_GT(r.phase_seconds.at("apply"), 0.0);
    // The run row carries them too, for the history and the metrics.
    const int64_t apply_us_in_row = scalar("SELECT round((details->'phase_seconds'->>'apply')::float8 * 1e6)::bigint FROM " +
                                           schema + ".run WHERE id = " + std::to_string(r.run_id));
    EXPECT_NEAR(static_cast<double>(apply_us_in_row), r.phase_seconds.at("apply") * 1e6, 1.0);
}

}  // namespace cdpsync::testing
