// The read side against the CDP's documented latitude (simulator read quirks): shifting
// pages, data: null, overcounting totals, customerId beside an internal id, drift between
// full resyncs, and member identity confirmation. Real PostgreSQL and the simulator.
#include "sim/quirks.hpp"
#include "store/session.hpp"
#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

using Rows = std::vector<std::pair<int64_t, std::string>>;

class ReadTest : public SyncTest {
protected:
    void set_read(const sim::ReadQuirks& read) {
        sim::Quirks q = server->state().quirks();
        q.read = read;
        server->state().set_quirks(q);
    }
    int64_t cdp_calls() { return server->stats()["total"].get<int64_t>(); }
    int64_t simple_queries() { return endpoint_calls("customer-group/simpleQuery"); }
    int64_t identity_rows() { return scalar("SELECT count(*) FROM " + schema + ".identity_confirmation"); }
    // Two resyncs of `rows`; the second removes a member added by hand to `group`, which
    // confirms the member identity once, so later cycles remove without asking again.
    void synced_with_identity_confirmed(const Rows& rows, const std::string& group) {
        desire(rows);
        ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
        server->state().add_membership(1500, *group_id(group));
        ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
        ASSERT_EQ(identity_rows(), 1);
    }
};

TEST_F(ReadTest, NewestFirstListWithMembersAddedDuringTheReadIsReadAgainAndConverges) {
    Rows rows;
    add_range(rows, 1, 120, "alpha");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    const int64_t alpha = *group_id("alpha");
    server->state().add_membership(1500, alpha);  // by hand: to remove

    sim::ReadQuirks read;
    read.newest_first = true;
    read.churn_adds = 2;    // other parties add 2 new customers before each of ...
    read.churn_reads = 3;   // ... the first 3 member-page reads (the first pass)
    set_read(read);
    server->reset_stats();
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    // The foreign members added during the read were all seen (second pass) and removed.
    EXPECT_EQ(server->state().members_of(alpha).size(), 120u);
    EXPECT_EQ(r.counts.removes, 1 + 6);
    // Pass 1 (3 pages) shifted; pass 2 (3 pages) was consistent; 1 page for the identity sample.
    EXPECT_EQ(member_reads(), 3 + 3 + 1);
}

TEST_F(ReadTest, AListThatNeverHoldsStillHoldsRemovalsButAddsWhatIsMissing) {
    Rows rows;
    add_range(rows, 1, 60, "alpha");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    const int64_t alpha = *group_id("alpha");
    server->state().add_membership(1500, alpha);    // by hand
    server->state().remove_membership(7, alpha);    // by hand: to add back
    sim::ReadQuirks read;
    read.churn_adds = 1;  // every read, forever
    set_read(read);
    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::failed) << "an unreliable read is reported, not called a success";
    EXPECT_TRUE(server->state().is_member(7, alpha)) << "adds go on";
    EXPECT_TRUE(server->state().is_member(1500, alpha)) << "no removal on a read that cannot be trusted";
    EXPECT_EQ(r.counts.removes, 0);
    ASSERT_FALSE(r.group_errors.empty());
    EXPECT_NE(r.group_errors[0].error.find("removals from this group held"), std::string::npos);
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerDeleteGroups"), 0);

    set_read({});  // the other party stops: the next resync removes what it added
    auto again = resync();
    ASSERT_EQ(again.status, sync::RunStatus::succeeded) << again.to_text();
    expect_converged(rows);
}

TEST_F(ReadTest, CustomerIdBesideAnUnrelatedInternalIdNoWriteNamesAnInternalId) {
    const int64_t alpha = server->state().add_group("alpha", "", std::nullopt, cdp::kStaticGroup);
    for (int64_t c = 1; c <= 30; ++c) server->state().add_membership(c, alpha);
    server->state().add_membership(900, alpha);  // foreign: to remove
    server->state().add_membership(901, alpha);
    sim::ReadQuirks read;
    read.customer_id_records = true;
    set_read(read);
    Rows rows;
    add_range(rows, 1, 60, "alpha");
    desire(rows);
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    EXPECT_EQ(r.counts.adds, 30);
    EXPECT_EQ(r.counts.removes, 2);
    for (const auto& w : server->state().write_log())
        EXPECT_LT(w.customer_id, 2000) << w.endpoint << " named " << w.customer_id << ", not a customer id";
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".identity_confirmation WHERE field = 'auto'"
                     " AND resolved_field = 'customerId'"), 1);
}

TEST_F(ReadTest, EmptyGroupsAndEmptySearchesAnsweredDataNull) {
    server->state().add_group("beta", "", std::nullopt, cdp::kStaticGroup);  // empty: its page is data: null
    sim::ReadQuirks read;
    read.null_data = true;
    set_read(read);
    Rows rows;
    add_range(rows, 1, 20, "alpha");  // not in the CDP
    add_range(rows, 5, 10, "beta");
    desire(rows);
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);

    add_range(rows, 30, 5, "gamma");  // a new name: the incremental cycle searches it, finds nothing (null)
    desire(rows);
    auto inc = once();
    ASSERT_EQ(inc.status, sync::RunStatus::succeeded) << inc.to_text();
    expect_converged(rows);
}

TEST_F(ReadTest, OvercountingTotalsCostAtMostOneExtraPagePerGroup) {
    Rows rows;
    add_range(rows, 1, 100, "alpha");  // two full pages of 50
    add_range(rows, 1, 75, "beta");    // a full page and a short one
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    server->state().add_membership(1500, *group_id("alpha"));  // drift so the resync writes
    sim::ReadQuirks read;
    read.total_overcount = 7;  // soft-deleted rows counted in `total`
    set_read(read);
    server->reset_stats();
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    // alpha: 3 pages (with 101 members), beta 2; at most one extra each, and no re-read.
    EXPECT_LE(member_reads(), (3 + 1) + (2 + 1) + 1 /* identity sample */);
}

TEST_F(ReadTest, HandEditsAreCorrectedByTheNextIncrementalCycleAtTheStatedCost) {
    Rows rows;
    add_range(rows, 1, 120, "alpha");
    add_range(rows, 1, 30, "beta");
    add_range(rows, 1, 10, "gamma");
    ASSERT_NO_FATAL_FAILURE(synced_with_identity_confirmed(rows, "gamma"));

    // Nothing drifted: one simpleQuery page (3 groups, page size 50) and nothing else.
    server->reset_stats();
    auto quiet = once();
    ASSERT_EQ(quiet.status, sync::RunStatus::succeeded) << quiet.to_text();
    EXPECT_EQ(cdp_calls(), 1);
    EXPECT_EQ(simple_queries(), 1);
    EXPECT_EQ(quiet.counts.drift_corrections, 0);

    const int64_t beta = *group_id("beta");
    const int64_t gamma = *group_id("gamma");
    server->state().add_membership(900, beta);     // added by hand
    server->state().remove_membership(4, gamma);   // removed by hand
    server->reset_stats();
    auto r = once();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    EXPECT_EQ(r.counts.drift_corrections, 2);
    EXPECT_EQ(simple_queries(), 1);                  // ceil(3 groups / 50)
    EXPECT_EQ(member_reads(), 2);                    // beta's one page, gamma's one page
    EXPECT_EQ(write_calls(), 2);                     // remove 900 from beta, add 4 to gamma
    EXPECT_EQ(cdp_calls(), 1 + 2 + 2);
    EXPECT_EQ(scalar("SELECT drift_corrections FROM " + schema + ".run ORDER BY id DESC LIMIT 1"), 2);

    cfg.sync.drift_check = false;  // off: the cycle reads nothing from the CDP
    server->state().add_membership(901, beta);
    server->reset_stats();
    ASSERT_EQ(once().status, sync::RunStatus::succeeded);
    EXPECT_EQ(cdp_calls(), 0);
}

// A new group's name is looked up in one listing, and the drift check compares the other
// groups' totals against that same listing instead of listing again.
TEST_F(ReadTest, TheDriftCheckReusesTheListingThatFoundANewGroup) {
    Rows rows;
    add_range(rows, 1, 30, "alpha");
    add_range(rows, 1, 10, "beta");
    ASSERT_NO_FATAL_FAILURE(synced_with_identity_confirmed(rows, "beta"));

    server->state().add_membership(900, *group_id("alpha"));  // added by hand
    add_range(rows, 1, 5, "gamma");                           // a new group
    desire(rows);
    server->reset_stats();
    auto r = once();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    EXPECT_EQ(r.counts.drift_corrections, 1);
    EXPECT_EQ(simple_queries(), 1) << "one listing for the new name and the drift check";
    EXPECT_EQ(endpoint_calls("customer-group/addSingleGroup"), 1);
    EXPECT_EQ(member_reads(), 1);  // alpha again; gamma was created this run
}

TEST_F(ReadTest, AWrongIdFieldHoldsRemovalsAndNamesTheField) {
    const int64_t alpha = server->state().add_group("alpha", "", std::nullopt, cdp::kStaticGroup);
    for (int64_t c = 1; c <= 10; ++c) server->state().add_membership(c, alpha);
    sim::ReadQuirks read;
    read.customer_id_records = true;
    set_read(read);
    cfg.cdp.customer_id_field = "id";  // the internal row id: wrong
    Rows rows;
    add_range(rows, 1, 5, "alpha");
    desire(rows);
    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::failed);
    EXPECT_EQ(endpoint_calls("customer-group-ref/customerDeleteGroups"), 0) << "removals held";
    bool named = false;
    for (const auto& e : r.group_errors)
        if (e.error.find("member identity mismatch") != std::string::npos &&
            e.error.find("field 'id'") != std::string::npos)
            named = true;
    EXPECT_TRUE(named) << r.to_text();
    EXPECT_EQ(identity_rows(), 0);

    cfg.cdp.customer_id_field = "";  // auto: customerId
    auto fixed = resync();
    ASSERT_EQ(fixed.status, sync::RunStatus::succeeded) << fixed.to_text();
    expect_converged(rows);
    EXPECT_EQ(identity_rows(), 1);
}

}  // namespace
}  // namespace cdpsync::testing
