// Simulator faults under the engine: each kind alone, then all at once. A full resync, then
// incremental cycles (as the daemon would) until one succeeds; the CDP must then hold exactly the desired
// rows, with no op lost and none sent twice beyond those in flight (fault_ledger.hpp).
#include <iostream>

#include "faults/fault_ledger.hpp"
#include "sim/faults.hpp"
#include "sync/sync_fixture.hpp"

namespace cdpsync::testing::faults {
namespace {

constexpr int kTimeoutMs = 400;
constexpr int kMaxRuns = 10;

class SimFaultTest : public SyncTest {
protected:
    void SetUp() override {
        SyncTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        spdlog::set_level(spdlog::level::err);  // the failed ops of faulted runs are expected
        cfg.cdp.timeout_ms = kTimeoutMs;
        cfg.cdp.retry = {6, 5, 100};
        cfg.cdp.page_size = 20;
        cfg.cdp.max_in_flight = 4;
        auto& st = server->state();
        const int64_t fa = st.add_group("fault-a");
        const int64_t fb = st.add_group("fault-b");
        for (int64_t c = 1; c <= 300; ++c) st.add_membership(c, fa);
        for (int64_t c = 200; c <= 500; ++c) st.add_membership(c, fb);
        // fault-a: 50 removed, 100 added; fault-b: 200 added; fault-new: created, 150 added.
        add_range(rows, 1, 250, "fault-a");
        add_range(rows, 1001, 100, "fault-a");
        add_range(rows, 200, 501, "fault-b");
        add_range(rows, 1, 150, "fault-new");
        if (soak()) add_range(rows, 1200, 700, "fault-b");
        desire(rows);
    }

    // Runs a full resync under `fc`, then incremental cycles until one succeeds; checks, records.
    // `kind`: the fault outcome (sim stats) that must have been injected at least once.
    void run_scenario(const std::string& name, sim::FaultConfig fc, const std::string& kind) {
        fc.seed = fault_seed();
        server->faults().configure(fc);
        std::cerr << "[ fault seed ] " << name << ": " << *fc.seed << " (CDP_SYNC_FAULT_SEED to replay)\n";
        int runs = 0;
        sync::RunReport last;
        // A full resync, then incremental cycles until one succeeds, as the daemon does: a
        // group whose snapshot failed is read again, the others are not.
        while (runs < kMaxRuns) {
            last = runs++ == 0 ? resync() : once();
            if (last.status == sync::RunStatus::succeeded) break;
        }
        const auto stats = server->stats();
        server->faults().clear();

        const auto log = server->state().write_log();
        Ledger ledger(kTimeoutMs);
        const auto [writes, lost, dup] = check_end_state(ledger, log, server->state(), rows);
        int64_t spikes = 0;
        for (const auto& e : log) spikes += e.delay_ms >= kTimeoutMs ? 1 : 0;
        std::string injected = injected_faults(stats);
        if (spikes > 0) injected = (injected == "none" ? "" : injected + ", ") + "spikes " + std::to_string(spikes);
        const bool correct = last.status == sync::RunStatus::succeeded && lost == 0 && dup == 0;
        record({name, injected + " (" + std::to_string(runs) + " runs)", run_retries(dsn, schema), correct, lost, dup,
                writes.in_flight});

        EXPECT_EQ(last.status, sync::RunStatus::succeeded) << "after " << runs << " runs:\n" << last.to_text();
        if (kind == "spike") {
            EXPECT_GT(spikes, 0) << "no latency spike reached the timeout: the scenario tested nothing";
        } else {
            const auto& outcomes = stats["outcomes"];
            EXPECT_GT(outcomes.value(kind, int64_t{0}), 0) << "no " << kind << " injected: " << stats.dump();
        }
        expect_converged(rows);
    }

    Rows rows;
};

TEST_F(SimFaultTest, Http5xxFivePercent) {
    sim::FaultConfig fc;
    fc.global.error_5xx_probability = 0.05;
    run_scenario("sim: 5% HTTP 5xx", fc, "fault_http_5xx");
}

TEST_F(SimFaultTest, ConnectionResetsTwoPercent) {
    sim::FaultConfig fc;
    fc.global.reset_probability = 0.02;
    run_scenario("sim: 2% connection resets (after the write)", fc, "fault_reset");
}

TEST_F(SimFaultTest, Bursts429WithRetryAfter) {
    sim::FaultConfig fc;
    fc.global.burst_429_probability = 0.01;
    fc.global.burst_429_length = 4;
    fc.global.retry_after_s = 1;
    run_scenario("sim: 429 bursts with Retry-After 1 s", fc, "fault_burst_429");
}

TEST_F(SimFaultTest, LatencySpikesPastTheTimeout) {
    sim::FaultConfig fc;
    // On the write endpoints, so every spike is in the write log (the reads get none).
    for (const std::string ep : {"customerAddGroups", "customerDeleteGroups"}) {
        fc.endpoints[ep].spike_probability = 0.03;
        fc.endpoints[ep].spike_ms = kTimeoutMs + 400;
    }
    run_scenario("sim: 3% latency spikes past the 400 ms timeout", fc, "spike");
}

TEST_F(SimFaultTest, TruncatedBodies) {
    sim::FaultConfig fc;
    fc.global.truncated_body_probability = 0.03;
    run_scenario("sim: 3% truncated bodies (after the write)", fc, "fault_truncated_body");
}

TEST_F(SimFaultTest, NonJsonBodies) {
    sim::FaultConfig fc;
    fc.global.non_json_body_probability = 0.03;
    run_scenario("sim: 3% non-JSON (HTML) bodies", fc, "fault_non_json_body");
}

TEST_F(SimFaultTest, TransientCodeMinusOne) {
    sim::FaultConfig fc;
    fc.global.transient_code_probability = 0.05;
    run_scenario("sim: 5% transient code -1 (系统繁忙)", fc, "fault_transient_code");
}

TEST_F(SimFaultTest, AllKindsAtOnce) {
    sim::FaultConfig fc;
    fc.global.error_5xx_probability = 0.05;
    fc.global.reset_probability = 0.02;
    fc.global.burst_429_probability = 0.005;
    fc.global.burst_429_length = 3;
    fc.global.truncated_body_probability = 0.01;
    fc.global.non_json_body_probability = 0.01;
    fc.global.transient_code_probability = 0.03;
    for (const std::string ep : {"customerAddGroups", "customerDeleteGroups"}) {
        fc.endpoints[ep] = fc.global;
        fc.endpoints[ep].spike_probability = 0.01;
        fc.endpoints[ep].spike_ms = kTimeoutMs + 400;
    }
    run_scenario("sim: all kinds at once", fc, "fault_reset");
}

}  // namespace
}  // namespace cdpsync::testing::faults
