// Crash safety with the real binary: kill -9 during the snapshot and during the apply, then
// resume to convergence; two processes at once do not both apply.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "sim/faults.hpp"
#include "support/child_process.hpp"
#include "sync/steps.hpp"
#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

namespace fs = std::filesystem;
using Rows = std::vector<std::pair<int64_t, std::string>>;
using namespace std::chrono_literals;

class KillTest : public SyncTest {
protected:
    void SetUp() override {
        SyncTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        dir = fs::temp_directory_path() / ("cdp-sync-kill-" + schema);
        fs::create_directories(dir);
        config_path = dir / "config.yaml";
        std::ofstream f(config_path);
        f << "cdp:\n"
          << "  base_url: " << server->base_url() << "\n"
          << "  token_env: CDP_SYNC_TEST_TOKEN\n"
          << "  rate_limit_qps: 10000\n"
          << "  max_in_flight: " << kInFlight << "\n"
          << "  page_size: 20\n"
          << "  timeout_ms: 5000\n"
          << "  retry: {max_attempts: 2, base_delay_ms: 5, max_delay_ms: 20}\n"
          << "database:\n"
          << "  dsn: \"" << dsn << "\"\n"
          << "  desired_memberships: \"SELECT customer_id, group_name FROM " << src << ".m\"\n"
          << "  schema: " << schema << "\n"
          << "logging:\n"
          << "  file: \"\"\n"
          << "  level: info\n";
    }
    void TearDown() override {
        children.clear();  // kills and reaps any still running
        std::error_code ec;
        fs::remove_all(dir, ec);
        SyncTest::TearDown();
    }

    ChildProcess* spawn(const std::string& command, const std::string& log_name) {
        ChildOptions o;
        o.stdout_path = dir / log_name;
        children.push_back(std::make_unique<ChildProcess>(built_binary("cdp-sync"),
                                                          std::vector<std::string>{"--config", config_path.string(), command}, o));
        return children.back().get();
    }
    static int wait_exit(ChildProcess* child) { return child->wait(300s).value_or(-1); }
    // SIGKILL, then wait until PostgreSQL has ended the killed process's session: a backend
    // still finishing its statement holds the apply lock, and the next run would report busy.
    void kill9(ChildProcess* child) {
        EXPECT_EQ(child->stop(SIGKILL), 128 + SIGKILL);
        store::Session session(dsn, schema);
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (!session.lock_apply() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(10ms);
    }
    std::string log_of(const std::string& name) {
        std::ifstream f(dir / name);
        return std::string(std::istreambuf_iterator<char>(f), {});
    }
    // Polls until pred() or the child exits or the deadline passes. True when pred() held.
    template <class Pred>
    static bool wait_for(ChildProcess* child, Pred pred, std::chrono::seconds limit = 30s) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            if (pred()) return true;
            if (!child->running()) return false;
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }
    int64_t scalar_or(const std::string& sql, int64_t fallback) {
        try {
            return scalar(sql);
        } catch (const std::exception&) {
            return fallback;  // the schema is not there yet
        }
    }
    void set_latency(const std::string& endpoint, int ms) {
        sim::FaultConfig fc;
        fc.endpoints[endpoint].latency_ms = ms;
        server->faults().configure(fc);
    }

    static constexpr int kInFlight = 4;
    fs::path dir, config_path;
    std::vector<std::unique_ptr<ChildProcess>> children;
};

TEST_F(KillTest, KilledDuringSnapshotResumesFromTheSavedCursor) {
    Rows rows;
    for (const std::string name : {"k1", "k2", "k3"}) {
        const int64_t id = server->state().add_group(name);
        for (int64_t c = 1; c <= 400; ++c) server->state().add_membership(c, id);
        add_range(rows, 1, 400, name);
    }
    rows.erase(rows.begin());        // k1 loses customer 1
    rows.emplace_back(1500, "k3");  // k3 gains 1500
    desire(rows);
    set_latency("getCustomerPageByGroupId", 40);

    ChildProcess* pid = spawn("resync", "first.log");
    ASSERT_TRUE(wait_for(pid, [&] {
        return scalar_or("SELECT coalesce(sum(next_page - 1), 0) FROM " + schema + ".snapshot_cursor", 0) >= 25;
    })) << log_of("first.log");
    kill9(pid);
    ASSERT_EQ(scalar("SELECT count(*) FROM " + schema + ".run WHERE status = 'running' AND phase = 'snapshot'"), 1);
    const int64_t saved_pages = scalar("SELECT sum(next_page - 1) FROM " + schema + ".snapshot_cursor");
    const int64_t reads_before = member_reads();
    EXPECT_EQ(write_calls(), 0);

    server->faults().clear();
    cfg.cdp.page_size = 20;  // as in the config file: the cursor's page numbers stay valid
    auto r = resync();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_TRUE(r.resumed);
    EXPECT_EQ(r.resumed_phase, store::RunPhase::snapshot);
    // The resumed run reads what was not saved yet, plus per group (3) one page-1 probe and
    // at most a window of max_in_flight pages fetched past the group's end, not the whole
    // 60 pages again.
    const int64_t reads_after = member_reads() - reads_before;
    EXPECT_LE(reads_after, 60 - saved_pages + 3 * (1 + kInFlight)) << "saved " << saved_pages;
    EXPECT_EQ(r.counts.adds, 1);
    EXPECT_EQ(r.counts.removes, 1);
    EXPECT_EQ(write_calls(), 2);
    expect_converged(rows);
    // One run did it all.
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".run"), 1);

    // A snapshot resumed with another page size re-reads the group instead of mixing sizes.
    server->state().add_membership(1600, *group_id("k2"));
    set_latency("getCustomerPageByGroupId", 40);
    pid = spawn("resync", "third.log");
    ASSERT_TRUE(wait_for(pid, [&] {
        return scalar_or("SELECT coalesce(max(next_page), 0) FROM " + schema + ".snapshot_cursor WHERE NOT done", 0) >= 4;
    })) << log_of("third.log");
    kill9(pid);
    server->faults().clear();
    cfg.cdp.page_size = 50;
    auto r2 = resync();
    ASSERT_EQ(r2.status, sync::RunStatus::succeeded) << r2.to_text();
    EXPECT_TRUE(r2.resumed);
    EXPECT_EQ(r2.counts.adds, 0);
    EXPECT_EQ(r2.counts.removes, 1);
    expect_converged(rows);
}

TEST_F(KillTest, KilledDuringApplyResendsAtMostTheCallsInFlightAndTheUncommittedOutcomes) {
    Rows rows;
    add_range(rows, 1, 300, "apply-a");
    add_range(rows, 100, 300, "apply-b");
    desire(rows);
    set_latency("customerAddGroups", 25);

    ChildProcess* pid = spawn("resync", "first.log");
    ASSERT_TRUE(wait_for(pid, [&] {
        return scalar_or("SELECT count(*) FROM " + schema + ".op WHERE state = 'done'", 0) >= 60;
    })) << log_of("first.log");
    kill9(pid);
    const int64_t done_at_kill = scalar("SELECT count(*) FROM " + schema + ".op WHERE state = 'done'");
    ASSERT_LT(done_at_kill, 399) << "the kill came too late to test anything";
    ASSERT_EQ(scalar("SELECT count(*) FROM " + schema + ".run WHERE status = 'running' AND phase = 'apply'"), 1);

    // The second process continues the journal: it does not plan again.
    pid = spawn("resync", "second.log");
    EXPECT_EQ(wait_exit(pid), 0) << log_of("second.log");
    EXPECT_NE(log_of("second.log").find("resuming run 1"), std::string::npos) << log_of("second.log");
    EXPECT_EQ(scalar("SELECT count(DISTINCT run_id) FROM " + schema + ".op"), 1);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + schema + ".op"), 399);
    expect_converged(rows);

    std::map<int64_t, int> sends;
    for (const auto& e : server->state().write_log())
        if (e.endpoint.find("customerAddGroups") != std::string::npos) ++sends[e.customer_id];
    EXPECT_EQ(sends.size(), 399u);
    int twice = 0;
    for (const auto& [customer, n] : sends) {
        EXPECT_LE(n, 2) << "customer " << customer;
        if (n > 1) ++twice;
    }
    EXPECT_LE(twice, kInFlight + sync::uncommitted_outcome_cap(kInFlight));
}

TEST_F(KillTest, TwoProcessesAtOnceDoNotBothApply) {
    Rows rows;
    add_range(rows, 1, 200, "both");
    desire(rows);
    set_latency("customerAddGroups", 10);
    // Migrate first so both start on an existing schema and race for the apply lock only.
    { store::Session(dsn, schema).migrate(); }
    ChildProcess* a = spawn("resync", "a.log");
    ChildProcess* b = spawn("resync", "b.log");
    const int ea = wait_exit(a);
    const int eb = wait_exit(b);
    EXPECT_TRUE((ea == 0 && eb == 4) || (ea == 4 && eb == 0)) << "exit codes " << ea << ", " << eb << "\n"
                                                              << log_of("a.log") << log_of("b.log");
    const std::string loser = ea == 4 ? log_of("a.log") : log_of("b.log");
    EXPECT_NE(loser.find("another cdp-sync is applying"), std::string::npos) << loser;
    std::map<int64_t, int> sends;
    for (const auto& e : server->state().write_log())
        if (e.endpoint.find("customerAddGroups") != std::string::npos) ++sends[e.customer_id];
    EXPECT_EQ(sends.size(), 200u);
    for (const auto& [customer, n] : sends) EXPECT_EQ(n, 1) << "customer " << customer;
    expect_converged(rows);
}

}  // namespace
}  // namespace cdpsync::testing
