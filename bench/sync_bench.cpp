// sync_bench: the cdp-sync binary against the in-process simulator and a real PostgreSQL.
//
//   CDP_SYNC_TEST_DSN=... build/bench/sync_bench [customers=200000] [ops_at_50qps=1000]
//
// Part 1 (simulator rate limit off): 200,000 customers x 5 of 50 groups = 1,000,000
// memberships already in the CDP; the database changes 5% of the customers (a third gain a
// group, a third lose one, a third both). `plan --full`, then `resync`, then `resync` again.
// Write calls must equal the lower bound (customers with adds + customers with removes),
// member-list reads the pages needed (sum over groups of ceil(members / page size)).
// Part 2 (simulator limiting to 50 QPS, client configured at 50): `run --once` over
// `ops_at_50qps` new memberships; the achieved write rate from the simulator's write log,
// and the 429s it sent.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "cdp_sync_process.hpp"
#include "sim/server.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

using cdpsync::bench::binary_dir;
using cdpsync::bench::Proc;
using cdpsync::bench::run_cdp_sync;

constexpr int kGroups = 50;
constexpr int kPerCustomer = 5;
constexpr int kPageSize = 1000;


// Customer c's groups (indexes 0..49): (7c + 11k) mod 50 for k < 5, all distinct.
int group_index(int64_t c, int k) { return static_cast<int>((7 * c + 11 * k) % kGroups); }



void write_config(const fs::path& path, const std::string& base_url, const std::string& dsn,
                  const std::string& schema, const std::string& src, double qps) {
    std::ofstream f(path);
    f << "cdp:\n  base_url: " << base_url << "\n  token_env: CDP_SYNC_BENCH_TOKEN\n"
      << "  rate_limit_qps: " << qps << "\n  max_in_flight: 8\n  page_size: " << kPageSize << "\n"
      << "  timeout_ms: 30000\n"
      << "database:\n  dsn: \"" << dsn << "\"\n"
      << "  desired_memberships: \"SELECT customer_id, group_name FROM " << src << ".m\"\n"
      << "  schema: " << schema << "\n"
      << "sync:\n  max_deletes: 100000000\n"
      << "logging:\n  file: \"\"\n  level: warn\n";
}

}  // namespace

int main(int argc, char** argv) {
    const char* dsn_env = std::getenv("CDP_SYNC_TEST_DSN");
    if (!dsn_env) {
        std::cerr << "sync_bench: set CDP_SYNC_TEST_DSN to a PostgreSQL DSN (scripts/pg-cluster.sh start DIR PORT)\n";
        return 2;
    }
    const std::string dsn = dsn_env;
    const int64_t customers = argc > 1 ? std::atoll(argv[1]) : 200000;
    const int64_t limited_ops = argc > 2 ? std::atoll(argv[2]) : 1000;
    spdlog::set_level(spdlog::level::warn);
    ::setenv("CDP_SYNC_BENCH_TOKEN", "bench-token", 1);

    const std::string suffix = "b" + std::to_string(::getpid());
    const std::string schema = "cdp_sync_" + suffix, src = "src_" + suffix;
    const fs::path dir = fs::temp_directory_path() / ("cdp-sync-bench-" + suffix);
    fs::create_directories(dir);

    cdpsync::sim::ServerOptions so;
    so.token = "bench-token";
    so.threads = 1;
    so.max_page_size = kPageSize;
    cdpsync::sim::Server sim(so);
    sim.start();

    // The CDP as it is: 1M memberships.
    std::vector<int64_t> gid(kGroups);
    for (int g = 0; g < kGroups; ++g) gid[g] = sim.state().add_group("bench-" + std::to_string(g));
    sim.state().add_customers(1, customers + limited_ops + 10);
    {
        std::vector<std::pair<int64_t, int64_t>> pairs;
        pairs.reserve(customers * kPerCustomer);
        for (int64_t c = 1; c <= customers; ++c)
            for (int k = 0; k < kPerCustomer; ++k) pairs.emplace_back(c, gid[group_index(c, k)]);
        sim.state().add_memberships(pairs);
    }

    // The database: 5% of the customers changed.
    int64_t customers_adding = 0, customers_removing = 0, rows = 0;
    pqxx::connection conn(dsn);
    {
        pqxx::work w(conn);
        w.exec0("CREATE SCHEMA " + src + "; CREATE TABLE " + src + ".m (customer_id bigint, group_name text)");
        pqxx::stream_to s(w, src + ".m", std::vector<std::string>{"customer_id", "group_name"});
        for (int64_t c = 1; c <= customers; ++c) {
            const bool changed = c % 20 == 0;
            const int variant = static_cast<int>(c % 60 / 20);  // 0 add, 1 remove, 2 both
            for (int k = 0; k < kPerCustomer; ++k) {
                if (changed && k == 0 && variant != 0) continue;  // loses its first group
                s << std::make_tuple(c, "bench-" + std::to_string(group_index(c, k)));
                ++rows;
            }
            if (changed && variant != 1) {  // gains a group it is not in
                s << std::make_tuple(c, "bench-" + std::to_string((7 * c + 5) % kGroups));
                ++rows;
            }
            if (changed) {
                if (variant != 1) ++customers_adding;
                if (variant != 0) ++customers_removing;
            }
        }
        s.complete();
        w.commit();
    }
    // Pages needed when `total` is trusted, and when the pager stops only at the first short
    // page (cdp::Api's rule, since `total` may change while paging): one more for a group
    // whose size is an exact multiple of the page size.
    int64_t pages_needed = 0, pages_short_page_rule = 0;
    for (int g = 0; g < kGroups; ++g) {
        const int64_t n = static_cast<int64_t>(sim.state().members_of(gid[g]).size());
        pages_needed += std::max<int64_t>(1, (n + kPageSize - 1) / kPageSize);
        pages_short_page_rule += n / kPageSize + 1;
    }
    const int64_t lower_bound = customers_adding + customers_removing;

    const fs::path config = dir / "config.yaml";
    write_config(config, sim.base_url(), dsn, schema, src, 100000);
    auto stat = [&](const char* key) { return sim.stats()[key].get<int64_t>(); };
    auto reads = [&] {
        auto s = sim.stats();
        auto& e = s["endpoints"];
        const char* k = "customer-group/getCustomerPageByGroupId";
        return e.contains(k) ? e[k].value("calls", int64_t{0}) : int64_t{0};
    };

    // plan --full: reads every page into the mirror, writes nothing.
    Proc plan = run_cdp_sync(config, {"plan", "--full", "--format", "json"}, dir / "plan.log");
    json pj;
    try {
        pj = json::parse(plan.output.substr(plan.output.find('{')));
    } catch (const std::exception&) {
        std::cerr << "plan output:\n" << plan.output << "\n";
        return 1;
    }
    const int64_t plan_reads = reads();
    const int64_t plan_writes = stat("write_calls");

    sim.reset_stats();
    Proc resync = run_cdp_sync(config, {"resync"}, dir / "resync.log");
    const int64_t resync_writes = stat("write_calls");
    const int64_t resync_reads = reads();
    const int64_t resync_total = stat("total");
    json details;
    {
        pqxx::work w(conn);
        details = json::parse(w.exec1("SELECT details::text FROM " + schema + ".run ORDER BY id DESC LIMIT 1")[0].as<std::string>());
        w.commit();
    }

    sim.reset_stats();
    Proc again = run_cdp_sync(config, {"resync"}, dir / "again.log");
    const int64_t again_writes = stat("write_calls");

    // Part 2: 50 QPS.
    {
        pqxx::work w(conn);
        w.exec_params0("INSERT INTO " + src + ".m SELECT c, 'bench-limited' FROM generate_series($1::bigint, $2::bigint) c",
                       customers + 1, customers + limited_ops);
        w.commit();
    }
    // The group exists (empty) and `plan` maps and snapshots it, so the timed cycle only writes.
    sim.state().add_group("bench-limited");
    Proc prep = run_cdp_sync(config, {"plan"}, dir / "prep.log");
    sim.set_rate_limit(50);
    write_config(config, sim.base_url(), dsn, schema, src, 50);
    sim.reset_stats();
    sim.state().clear_write_log();
    Proc limited = run_cdp_sync(config, {"run", "--once"}, dir / "limited.log");
    auto log = sim.state().write_log();
    // The sustained rate: writes per whole second from the first write on (the last,
    // partial second left out), averaged, and the slowest such second.
    double rate = 0, slowest = 0;
    int64_t limited_writes = 0;
    {
        std::vector<std::chrono::system_clock::time_point> times;
        for (const auto& e : log)
            if (e.endpoint.find("customerAddGroups") != std::string::npos) times.push_back(e.time);
        limited_writes = static_cast<int64_t>(times.size());
        if (times.size() > 1) {
            std::sort(times.begin(), times.end());
            std::vector<int64_t> buckets;
            for (auto t : times) {
                auto i = static_cast<size_t>(std::chrono::duration<double>(t - times.front()).count());
                if (buckets.size() <= i) buckets.resize(i + 1);
                ++buckets[i];
            }
            if (buckets.size() > 1) buckets.pop_back();
            int64_t sum = 0;
            slowest = 1e9;
            for (auto b : buckets) {
                sum += b;
                slowest = std::min<double>(slowest, b);
            }
            rate = static_cast<double>(sum) / buckets.size();
        }
    }
    const int64_t sent_429 = stat("sent_429");

    auto mb = [](long kb) { return kb / 1024.0; };
    auto ok = [](bool b) { return b ? "yes" : "NO"; };
    const double plan_phase = details.value("plan_seconds", 0.0);
    std::printf("## sync_bench: %lld memberships over %d groups, %lld customers, 5%% changed\n\n",
                static_cast<long long>(customers * kPerCustomer), kGroups, static_cast<long long>(customers));
    std::printf("| measure | value | target | met |\n|---|---|---|---|\n");
    std::printf("| source rows | %lld | | |\n", static_cast<long long>(rows));
    std::printf("| write-call lower bound (customers adding + removing) | %lld | | |\n", static_cast<long long>(lower_bound));
    std::printf("| plan --full: exit, wall time | %d, %.2f s | | |\n", plan.exit_code, plan.seconds);
    std::printf("| plan --full: write calls it prints | %lld | = lower bound | %s |\n",
                static_cast<long long>(pj.value("write_calls", int64_t{-1})), ok(pj.value("write_calls", int64_t{-1}) == lower_bound));
    std::printf("| plan --full: writes sent to the CDP | %lld | 0 | %s |\n", static_cast<long long>(plan_writes), ok(plan_writes == 0));
    std::printf("| pages needed: by total / by the short-page rule | %lld / %lld | | |\n",
                static_cast<long long>(pages_needed), static_cast<long long>(pages_short_page_rule));
    std::printf("| plan --full: member pages read | %lld | = pages needed %lld | %s |\n", static_cast<long long>(plan_reads),
                static_cast<long long>(pages_needed), ok(plan_reads == pages_needed));
    std::printf("| plan --full: peak RSS | %.1f MB | < 200 MB | %s |\n", mb(plan.max_rss_kb), ok(mb(plan.max_rss_kb) < 200));
    std::printf("| resync: exit, wall time | %d, %.2f s | 0 | %s |\n", resync.exit_code, resync.seconds, ok(resync.exit_code == 0));
    std::printf("| resync: diff + plan phase | %.2f s | < 10 s | %s |\n", plan_phase, ok(plan_phase < 10));
    std::printf("| resync: write calls | %lld | = lower bound %lld | %s |\n", static_cast<long long>(resync_writes),
                static_cast<long long>(lower_bound), ok(resync_writes == lower_bound));
    std::printf("| resync: member pages read | %lld | = pages needed %lld | %s |\n", static_cast<long long>(resync_reads),
                static_cast<long long>(pages_needed), ok(resync_reads == pages_needed));
    std::printf("| resync: all CDP requests | %lld | | |\n", static_cast<long long>(resync_total));
    std::printf("| resync: peak RSS | %.1f MB | < 200 MB | %s |\n", mb(resync.max_rss_kb), ok(mb(resync.max_rss_kb) < 200));
    std::printf("| second resync: exit, write calls | %d, %lld | 0, 0 | %s |\n", again.exit_code,
                static_cast<long long>(again_writes), ok(again.exit_code == 0 && again_writes == 0));
    std::printf("| 50 QPS run --once: exit, writes | %d, %lld | 0, %lld | %s |\n", limited.exit_code,
                static_cast<long long>(limited_writes), static_cast<long long>(limited_ops),
                ok(limited.exit_code == 0 && limited_writes == limited_ops));
    std::printf("| 50 QPS: achieved write rate (mean of whole seconds) | %.2f /s | >= 47.5 /s | %s |\n", rate, ok(rate >= 47.5));
    std::printf("| 50 QPS: slowest whole second | %.0f writes | | |\n", slowest);
    std::printf("| 50 QPS: 429s from the simulator | %lld | 0 | %s |\n", static_cast<long long>(sent_429), ok(sent_429 == 0));
    std::printf("| 50 QPS: peak RSS | %.1f MB | < 200 MB | %s |\n", mb(limited.max_rss_kb), ok(mb(limited.max_rss_kb) < 200));
    if (resync.exit_code != 0) std::fprintf(stderr, "resync output:\n%s\n", resync.output.c_str());
    if (limited.exit_code != 0) std::fprintf(stderr, "run --once output:\n%s\n", limited.output.c_str());
    (void)prep;

    {
        pqxx::work w(conn);
        w.exec0("DROP SCHEMA " + schema + " CASCADE; DROP SCHEMA " + src + " CASCADE");
        w.commit();
    }
    sim.stop();
    std::error_code ec;
    fs::remove_all(dir, ec);
    return 0;
}
