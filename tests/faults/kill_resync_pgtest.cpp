// kill -9 of the real binary at 20 random moments of one full resync (snapshot and apply),
// restarting it each time, then letting it finish. The moments are random progress points
// (pages saved + ops done) plus a random delay of up to 20 ms, from a fixed seed (printed;
// CDP_SYNC_FAULT_SEED overrides it). CDP_SYNC_SOAK=1: 60 kills, 3x the data, every simulator
// fault kind at once. The single-kill cases with their exact bounds are in
// tests/sync/sync_kill_pgtest.cpp.
#include <sys/wait.h>

#include <random>
#include <thread>

#include "faults/fault_fixture.hpp"
#include "sim/faults.hpp"
#include "sync/steps.hpp"

namespace cdpsync::testing::faults {
namespace {

constexpr int kInFlight = BinarySyncTest::kInFlight;
// What a kill -9 may leave sent but unrecorded: the calls in flight and the outcomes handed
// over to the group commit but not committed yet.
const int kResendBound = kInFlight + sync::uncommitted_outcome_cap(kInFlight);
constexpr int kPageSize = BinarySyncTest::kPageSize;
constexpr int kTimeoutMs = BinarySyncTest::kTimeoutMs;

class KillResyncTest : public BinarySyncTest {
protected:
    void SetUp() override {
        BinarySyncTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        config_path = write_config(config_text("  max_deletes: 100000\n"));
    }
    std::string phase() {
        try {
            pqxx::connection c(dsn);
            pqxx::nontransaction tx(c);
            auto r = tx.exec("SELECT phase FROM " + schema + ".run WHERE status = 'running' ORDER BY id DESC LIMIT 1");
            return r.empty() ? "start" : r[0][0].as<std::string>();
        } catch (const std::exception&) {
            return "start";
        }
    }
};

TEST_F(KillResyncTest, TwentyRandomKillsDuringOneFullResync) {
    const bool long_run = soak();
    const int kills = long_run ? 60 : 20;
    const int64_t scale = long_run ? 3 : 1;
    const uint64_t seed = fault_seed();
    std::cerr << "[ fault seed ] kill -9 x" << kills << ": " << seed << " (CDP_SYNC_FAULT_SEED to replay)\n";
    std::mt19937_64 rng(seed);
    if (long_run) server->state().add_customers(2001, 2000);

    // Three groups of 400*scale members in the CDP; the database wants 300*scale of the first,
    // 200*scale more in the second, a shifted third and a new fourth.
    const int64_t n = 400 * scale;
    Rows rows;
    auto& st = server->state();
    for (const std::string name : {"kill-1", "kill-2", "kill-3"}) {
        const int64_t id = st.add_group(name);
        std::vector<std::pair<int64_t, int64_t>> pairs;
        for (int64_t c = 1; c <= n; ++c) pairs.emplace_back(c, id);
        st.add_memberships(pairs);
    }
    add_range(rows, 1, 3 * n / 4, "kill-1");
    add_range(rows, 1, n + n / 2, "kill-2");
    add_range(rows, n / 2 + 1, n, "kill-3");
    add_range(rows, 1, 3 * n / 8, "kill-4");
    desire(rows);
    const int64_t pages = 3 * ((n + kPageSize - 1) / kPageSize);
    // Ops: one add per customer in n+1..1.5n (kill-2 and kill-3 together) and 1..3n/8 (kill-4);
    // one remove per customer in 1..n/2 (kill-3) and 3n/4+1..n (kill-1).
    const int64_t ops = n / 2 + 3 * n / 8 + n / 2 + n / 4;

    sim::FaultConfig fc;
    fc.endpoints["getCustomerPageByGroupId"].latency_ms = 15;
    fc.endpoints["customerAddGroups"].latency_ms = 8;
    fc.endpoints["customerDeleteGroups"].latency_ms = 8;
    if (long_run) {
        fc.global.error_5xx_probability = 0.05;
        fc.global.reset_probability = 0.02;
        fc.global.burst_429_probability = 0.005;
        fc.global.truncated_body_probability = 0.01;
        fc.global.non_json_body_probability = 0.005;
        fc.global.transient_code_probability = 0.03;
        for (auto& [ep, rule] : fc.endpoints) {
            const int latency = rule.latency_ms;
            rule = fc.global;
            rule.latency_ms = latency;
        }
        fc.endpoints["customerAddGroups"].spike_probability = 0.01;
        fc.endpoints["customerAddGroups"].spike_ms = kTimeoutMs + 300;
    }
    fc.seed = seed;
    server->faults().configure(fc);

    std::vector<double> moments;
    std::uniform_real_distribution<double> unit(0, 1);
    for (int i = 0; i < kills; ++i) moments.push_back(unit(rng));
    std::sort(moments.begin(), moments.end());
    std::uniform_int_distribution<int> jitter_ms(0, 20);

    // Half of the moments fall in the snapshot, half in the apply (each uniform in its phase's
    // progress; the apply's last 5% left out so the process cannot finish first), so both are
    // hit whatever their relative speed.
    auto progress = [&] {
        const int64_t done = query_or("SELECT count(*) FROM " + schema + ".op WHERE state = 'done'", 0);
        const std::string p = phase();
        if (p == "plan" || p == "apply" || done > 0) return pages + done;
        return query_or("SELECT coalesce(sum(next_page - 1), 0) FROM " + schema + ".snapshot_cursor", 0);
    };

    Ledger ledger(kTimeoutMs);
    std::map<std::string, int> kills_in;
    int killed = 0, launches = 0;
    bool finished = false;
    int self_exits = 0;  // runs that ended by themselves before their moment (failed: soak faults)
    for (double m : moments) {
        const int64_t target = m < 0.5 ? static_cast<int64_t>(2 * m * static_cast<double>(pages))
                                       : pages + static_cast<int64_t>((2 * m - 1) * 0.95 * static_cast<double>(ops));
        for (;;) {
            if (!child || !child->running()) {
                child = std::make_unique<Child>(std::vector<std::string>{"--config", config_path.string(), "resync"},
                                                dir / "resync.out");
                ++launches;
            }
            const bool reached = eventually([&] { return !child->running() || progress() >= target; }, 60s);
            ASSERT_TRUE(reached) << "progress stuck below " << target << "\n" << read_file(dir / "resync.out");
            if (child->running()) break;
            if (child->wait(1s).value_or(-1) == 0) {
                finished = true;  // it finished before this moment: the rest cannot be kills
                break;
            }
            ASSERT_LT(++self_exits, 100) << read_file(dir / "resync.out");
        }
        if (finished) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(jitter_ms(rng)));
        child->signal(SIGKILL);
        const auto code = child->wait(10s);
        ASSERT_TRUE(code);
        if (*code != 128 + SIGKILL) break;  // it finished during the jitter
        ++killed;
        // Let the simulator finish what the dead process had already sent, then see which
        // applied writes the journal did not record.
        std::this_thread::sleep_for(60ms);
        ++kills_in[phase()];
        std::set<WriteKey> open;
        try {
            open = journal_keys(dsn, schema, "state IN ('pending', 'failed', 'permanent')");
        } catch (const std::exception&) {
        }
        const int64_t unrecorded = ledger.after_kill(server->state().write_log(), open);
        EXPECT_LE(unrecorded, kResendBound) << "kill " << killed << " left more writes unrecorded than were in flight or uncommitted";
    }
    child.reset();
    EXPECT_EQ(killed, kills) << "the resync finished before all kills; make the data bigger";
    if (!long_run) {
        EXPECT_EQ(self_exits, 0) << "a run failed without faults:\n" << read_file(dir / "resync.out");
    }
    EXPECT_GT(kills_in["snapshot"], 0) << "no kill during the snapshot";
    EXPECT_GT(kills_in["apply"], 0) << "no kill during the apply";

    // Restart once more and let it finish (with faults on in the soak, a failed op needs
    // another run, as the daemon would make).
    int final_code = -1;
    for (int i = 0; i < 6 && final_code != 0; ++i) {
        Child last({"--config", config_path.string(), "resync"}, dir / "resync.out");
        final_code = last.wait(120s).value_or(-1);
        ++launches;
    }
    EXPECT_EQ(final_code, 0) << read_file(dir / "resync.out");
    const auto stats = server->stats();
    server->faults().clear();

    const auto log = server->state().write_log();
    const auto [writes, lost, dup] = check_end_state(ledger, log, server->state(), rows);
    EXPECT_LE(writes.in_flight, static_cast<int64_t>(kResendBound) * killed + (long_run ? 1000 : 0));
    expect_converged(rows);
    // One full resync, continued by every restart (not a new plan each time). In the soak a
    // run failed by the faults is followed by a new one, as the daemon would.
    if (!long_run) {
        EXPECT_EQ(scalar("SELECT count(DISTINCT run_id) FROM " + schema + ".op"), 1);
    }

    std::string where;
    for (const auto& [p, k] : kills_in) where += (where.empty() ? "" : ", ") + p + " " + std::to_string(k);
    std::string injected = "kill -9 x" + std::to_string(killed) + " (" + where + "), seed " + std::to_string(seed);
    if (long_run) injected += "; " + std::to_string(self_exits) + " runs failed by faults; " + injected_faults(stats);
    record({std::string("kill -9 at ") + std::to_string(kills) + " random moments of one full resync" +
                (long_run ? " (soak)" : ""),
            injected, run_retries(dsn, schema), final_code == 0 && lost == 0 && dup == 0, lost, dup,
            writes.in_flight});
}

// A CDP that refuses an add already applied (quirk write.refuse_already_applied): the writes
// in flight at each kill -9 are applied, then sent again by the next process and refused.
// Each refusal is checked against the customer's groups and found done.
TEST_F(KillResyncTest, KillsMidApplyWhereTheResentWritesAreRefusedAsAlreadyApplied) {
    sim::Quirks q;
    q.write.refuse_already_applied = true;
    server->state().set_quirks(q);
    Rows rows;
    add_range(rows, 1, 600, "kill-applied");
    desire(rows);
    sim::FaultConfig fc;
    fc.endpoints["customerAddGroups"].latency_ms = 8;
    server->faults().configure(fc);

    Ledger ledger(kTimeoutMs);
    int killed = 0;
    for (int64_t target : {60, 180, 300, 420, 540}) {
        child = std::make_unique<Child>(std::vector<std::string>{"--config", config_path.string(), "resync"},
                                        dir / "resync.out");
        const bool reached = eventually([&] {
            return !child->running() ||
                   query_or("SELECT count(*) FROM " + schema + ".op WHERE state = 'done'", 0) >= target;
        }, 60s);
        ASSERT_TRUE(reached) << read_file(dir / "resync.out");
        ASSERT_TRUE(child->running()) << "the resync finished before the kill\n" << read_file(dir / "resync.out");
        child->signal(SIGKILL);
        ASSERT_TRUE(child->wait(10s));
        ++killed;
        std::this_thread::sleep_for(60ms);
        const auto open = journal_keys(dsn, schema, "state IN ('pending', 'failed', 'permanent')");
        EXPECT_LE(ledger.after_kill(server->state().write_log(), open), kResendBound);
    }
    child.reset();
    Child last({"--config", config_path.string(), "resync"}, dir / "resync.out");
    const int final_code = last.wait(120s).value_or(-1);
    EXPECT_EQ(final_code, 0) << read_file(dir / "resync.out");
    server->faults().clear();

    int64_t refused = 0;
    const auto log = server->state().write_log();
    for (const auto& e : log) refused += e.code != 0 ? 1 : 0;
    const auto [writes, lost, dup] = check_end_state(ledger, log, server->state(), rows);
    expect_converged(rows);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".op WHERE state IN ('failed', 'permanent')"), 0);
    record({"kill -9 mid-apply, resent adds refused as already applied (quirk)",
            "kill -9 x" + std::to_string(killed) + ", " + std::to_string(refused) + " resent writes refused",
            run_retries(dsn, schema), final_code == 0 && lost == 0 && dup == 0, lost, dup, writes.in_flight});
}

}  // namespace
}  // namespace cdpsync::testing::faults
