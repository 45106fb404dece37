// The planner's SQL on its own (store/plan.cpp), against a real PostgreSQL: desired rows from
// a test table through load_source, a mirror written straight into remote_member, then
// set_managed + compute_plan + journal_plan, and the journal as the executor would read it.
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <tuple>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "store/session.hpp"
#include "support/pg.hpp"

namespace cdpsync::testing {
namespace {

using store::OpKind;

// Managed groups by id; 99 is a static group of the CDP that cdp-sync does not manage.
constexpr int64_t kA = 10, kB = 11, kC = 12, kD = 13, kUnmanaged = 99;

class Planner : public ::testing::Test {
protected:
    void SetUp() override {
        CDP_SYNC_REQUIRE_PG(dsn);
        spdlog::set_level(spdlog::level::warn);
        std::tie(schema, src) = unique_schemas("p");
        pg_exec(dsn, create_source_sql(src));
        db.dsn = dsn;
        db.schema = schema;
        db.desired_memberships = "SELECT customer_id, group_name FROM " + src + ".m";
        s = std::make_unique<store::Session>(dsn, schema);
        s->migrate();
    }

    void TearDown() override {
        s.reset();
        if (!dsn.empty()) pg_exec(dsn, drop_schemas_sql(schema, src));
    }

    void desire(int64_t customer, const std::string& group) {
        pg_exec(dsn, "INSERT INTO " + src + ".m VALUES (" + std::to_string(customer) + ", '" + group + "')");
    }
    void mirror(int64_t customer, int64_t group_id) {
        pg_exec(dsn, "INSERT INTO " + schema + ".remote_member VALUES (" + std::to_string(group_id) + ", " +
                         std::to_string(customer) + ")");
    }

    // Loads the source, manages A..D, plans, journals; returns the summary.
    store::PlanSummary plan(store::PlanOptions options = {}) {
        s->source.load_source(db);
        s->planner.set_managed({{"A", kA}, {"B", kB}, {"C", kC}, {"D", kD}});
        auto summary = s->planner.compute_plan(options);
        store::RunCounts counts;
        counts.adds = summary.adds;
        counts.removes = summary.removes;
        run_id = s->runs.create_run(store::RunMode::full, false);
        s->planner.journal_plan(run_id, counts);
        return summary;
    }

    // The journal of the run: (customer, kind) -> group ids.
    std::map<std::pair<int64_t, OpKind>, std::vector<int64_t>> journal() {
        std::map<std::pair<int64_t, OpKind>, std::vector<int64_t>> out;
        for (const auto& op : s->journal.pending_ops(run_id, 0, 1000)) {
            EXPECT_EQ(out.count({op.customer_id, op.kind}), 0u) << "two ops of one kind for customer " << op.customer_id;
            out[{op.customer_id, op.kind}] = op.group_ids;
        }
        return out;
    }

    std::string dsn, schema, src;
    config::DatabaseConfig db;
    std::unique_ptr<store::Session> s;
    int64_t run_id = 0;
};

using Ids = std::vector<int64_t>;

TEST_F(Planner, CoalescesTheGroupsOfOneCustomerIntoOneAddAndOneRemoveCall) {
    for (const char* g : {"A", "B", "C"}) desire(1, g);
    desire(2, "A");
    mirror(1, kD);
    mirror(1, kUnmanaged);  // not managed: never removed
    mirror(3, kD);

    const auto p = plan();
    EXPECT_EQ(p.adds, 4);
    EXPECT_EQ(p.removes, 2);
    EXPECT_EQ(p.customers, 3);
    EXPECT_EQ(p.add_calls, 2);
    EXPECT_EQ(p.remove_calls, 2);
    EXPECT_EQ(p.set_calls, 0);
    const auto ops = journal();
    EXPECT_EQ(ops.size(), 4u);
    EXPECT_EQ(ops.at({1, OpKind::add}), (Ids{kA, kB, kC}));
    EXPECT_EQ(ops.at({1, OpKind::remove}), (Ids{kD}));
    EXPECT_EQ(ops.at({2, OpKind::add}), (Ids{kA}));
    EXPECT_EQ(ops.at({3, OpKind::remove}), (Ids{kD}));
}

TEST_F(Planner, NothingToDoWhenTheMirrorMatches) {
    desire(1, "A");
    desire(1, "B");
    mirror(1, kA);
    mirror(1, kB);
    const auto p = plan();
    EXPECT_EQ(p.write_calls(), 0);
    EXPECT_EQ(p.adds + p.removes, 0);
    EXPECT_TRUE(journal().empty());
}

TEST_F(Planner, AdditiveNeverRemoves) {
    desire(1, "A");
    mirror(1, kB);
    mirror(2, kD);
    const auto p = plan({.additive = true});
    EXPECT_EQ(p.adds, 1);
    EXPECT_EQ(p.removes, 0);
    EXPECT_EQ(p.remove_calls, 0);
    const auto ops = journal();
    ASSERT_EQ(ops.size(), 1u);
    EXPECT_EQ(ops.at({1, OpKind::add}), (Ids{kA}));
}

TEST_F(Planner, OwnsAllSendsOneSetCallWithTheFullListPerChangedCustomer) {
    desire(1, "A");
    desire(1, "B");
    mirror(1, kA);
    mirror(1, kD);          // managed, no longer desired: dropped from the list
    mirror(1, kUnmanaged);  // not managed: kept in the list
    mirror(2, kD);          // nothing desired any more: an empty list goes as a remove
    desire(3, "C");         // unchanged customer: no call
    mirror(3, kC);

    const auto p = plan({.owns_all = true});
    EXPECT_EQ(p.set_calls, 1);
    EXPECT_EQ(p.remove_calls, 1);
    EXPECT_EQ(p.add_calls, 0);
    EXPECT_EQ(p.customers, 2);
    const auto ops = journal();
    ASSERT_EQ(ops.size(), 2u);
    EXPECT_EQ(ops.at({1, OpKind::set}), (Ids{kA, kB, kUnmanaged}));
    EXPECT_EQ(ops.at({2, OpKind::remove}), (Ids{kD}));
}

TEST_F(Planner, CountsRemovalsPerGroupForTheDeleteGuard) {
    for (int64_t c = 1; c <= 7; ++c) mirror(c, kD);
    desire(1, "D");
    mirror(1, kB);
    const auto p = plan();
    EXPECT_EQ(p.removes, 7);  // six of D, one of B
    EXPECT_EQ(p.remove_calls, 7);
    const auto d = std::find_if(p.groups.begin(), p.groups.end(), [](const auto& g) { return g.name == "D"; });
    ASSERT_NE(d, p.groups.end());
    EXPECT_EQ(d->desired, 1);
    EXPECT_EQ(d->mirror, 7);
    EXPECT_EQ(d->removes, 6);
    EXPECT_EQ(d->sample_removes, (Ids{2, 3, 4, 5, 6}));  // the first five, in order
    const auto samples = s->planner.sample_removals(3);
    ASSERT_EQ(samples.size(), 3u);
    EXPECT_EQ(samples[0], (std::pair<int64_t, std::string>{1, "B"}));
    EXPECT_EQ(samples[1], (std::pair<int64_t, std::string>{2, "D"}));
}

TEST_F(Planner, HeldGroupPlansNoRemovalButCountsItsMirror) {
    for (int64_t c = 1; c <= 3; ++c) mirror(c, kD);
    mirror(1, kA);
    desire(4, "D");
    s->source.load_source(db);
    s->planner.set_managed({{"A", kA}, {"B", kB}, {"D", kD, true}});
    const auto p = s->planner.compute_plan({});
    EXPECT_EQ(p.adds, 1);
    EXPECT_EQ(p.removes, 1);  // customer 1 of A; D's three are held
    std::map<std::string, std::tuple<int64_t, int64_t, int64_t, int64_t>> groups;
    for (const auto& g : p.groups) groups[g.name] = {g.desired, g.mirror, g.adds, g.removes};
    EXPECT_EQ(groups, (std::map<std::string, std::tuple<int64_t, int64_t, int64_t, int64_t>>{
                          {"A", {0, 1, 0, 1}}, {"B", {0, 0, 0, 0}}, {"D", {1, 3, 1, 0}}}));
    const auto d = std::find_if(p.groups.begin(), p.groups.end(), [](const auto& g) { return g.name == "D"; });
    ASSERT_NE(d, p.groups.end());
    EXPECT_EQ(d->sample_adds, (Ids{4}));
    EXPECT_TRUE(d->sample_removes.empty());
}

}  // namespace
}  // namespace cdpsync::testing
