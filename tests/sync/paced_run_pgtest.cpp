// A whole run against a CDP that enforces its rate limit (issue 12): the pacing limiter keeps
// every call, reads and writes alike, inside the limit, whether the CDP counts a sliding
// second or the clock's whole seconds (simulator quirk limit.fixed_window). Real PostgreSQL,
// the simulator over loopback.
#include "sim/quirks.hpp"
#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

using Rows = std::vector<std::pair<int64_t, std::string>>;

constexpr double kQps = 25;

class PacedRun : public SyncTest, public ::testing::WithParamInterface<bool> {
protected:
    void limit(bool fixed_window) {
        server->set_rate_limit(kQps);
        sim::Quirks q = server->state().quirks();
        q.limit.fixed_window = fixed_window;
        server->state().set_quirks(q);
        cfg.cdp.rate_limit_qps = kQps;
    }
};

// ~70 calls, ~3 s at 25 QPS: a listing, 3 creates, 60 writes, then a resync's reads and fixes.
TEST_P(PacedRun, AFullRunAndAResyncAreNeverRefusedByTheLimit) {
    limit(GetParam());
    Rows rows;
    add_range(rows, 1, 30, "alpha");
    add_range(rows, 21, 30, "beta");
    add_range(rows, 41, 20, "gamma");
    desire(rows);
    auto first = resync();
    ASSERT_EQ(first.status, sync::RunStatus::succeeded) << first.to_text();
    server->state().add_membership(1500, *group_id("alpha"));  // by hand: the resync removes it
    // A second engine, as a second process would be (a `run --once` after another): its first
    // call keeps one spacing from the first engine's last.
    auto second = resync();
    ASSERT_EQ(second.status, sync::RunStatus::succeeded) << second.to_text();
    expect_converged(rows);
    const auto stats = server->stats();
    EXPECT_GE(stats["total"].get<int64_t>(), 70);
    EXPECT_EQ(stats["sent_429"].get<int64_t>(), 0) << stats.dump();
    EXPECT_LE(stats["max_arrivals_per_second"].get<int64_t>(), static_cast<int64_t>(kQps)) << stats.dump();
    EXPECT_EQ(first.counts.retries + second.counts.retries, 0);
}

INSTANTIATE_TEST_SUITE_P(Window, PacedRun, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Fixed" : "Sliding"; });

}  // namespace
}  // namespace cdpsync::testing
