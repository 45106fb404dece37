// scenario_bench: one benchmark scenario of bench/run.sh, printed as markdown table rows
// (cdp-sync, then the naive baseline) or as one JSON object.
//
//   CDP_SYNC_TEST_DSN=... build/release/bench/scenario_bench --memberships 100000
//       --changed-pct 5 --qps 0 --cycle incremental [--naive auto|run|compute|off]
//       [--page-size 1000] [--max-in-flight 8] [--format md|json] [--json-out FILE]
//   scenario_bench --header      the markdown table header
//
// The data: customers = memberships / 5, customer c in the 5 of 50 groups (7c + 11k) mod 50,
// k < 5, in the simulator (the CDP as it is) and in a PostgreSQL table (the database). Every
// (100 / pct)-th customer then changes in the database, in turn: gains one group, loses one,
// or is re-segmented (loses two, gains two). The mirror is primed by a `cdp-sync resync` on
// the unchanged data (rate limit off, no writes), then the table is swapped for the changed
// one and the measured cycle runs: `resync` (re-reads every member page, then writes) or
// `run --once` (diff against the mirror, no member reads), with the simulator limiting to
// --qps (0: off) and cdp-sync configured at the same rate.
//
// The naive baseline: what a user would otherwise script, one customerAddGroups or
// customerDeleteGroups call per changed membership, sequentially, on a second simulator
// seeded with the same starting state (cdp::Api, max_in_flight 1, the same rate limit).
// --naive auto runs it when it takes at most ~15 s (always with the limit off), otherwise
// computes its time as calls / limit.
#include <utility>  // before Boost.Asio's awaitable.hpp, which uses std::exchange

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "cdp/api.hpp"
#include "config/config.hpp"
#include "config/token.hpp"
#include "cdp_sync_process.hpp"
#include "sim/server.hpp"

namespace fs = std::filesystem;
namespace net = boost::asio;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using cdpsync::sim::Server;

namespace {

using cdpsync::bench::binary_dir;
using cdpsync::bench::Proc;
using cdpsync::bench::run_cdp_sync;

constexpr int kGroups = 50;
constexpr int kPerCustomer = 5;
constexpr const char* kToken = "bench-token";
constexpr const char* kReadEndpoint = "customer-group/getCustomerPageByGroupId";

struct Options {
    int64_t memberships = 10000;
    int changed_pct = 5;
    double qps = 0;
    std::string cycle = "incremental";
    std::string naive = "auto";
    int page_size = 1000;
    int max_in_flight = 8;
    bool fixed_window = false;  // the simulator's limit.fixed_window quirk
    std::string format = "md";
    std::string json_out;  // also append the JSON object to this file
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "scenario_bench: " << why
              << "\nusage: scenario_bench [--memberships N] [--changed-pct P] [--qps Q] [--cycle resync|incremental]\n"
                 "                      [--naive auto|run|compute|off] [--page-size N] [--max-in-flight N]\n"
                 "                      [--window sliding|fixed]\n"
                 "                      [--format md|json] [--json-out FILE]\n"
                 "       scenario_bench --header\n";
    std::exit(2);
}


int start_group(int64_t c, int k) { return static_cast<int>((7 * c + 11 * k) % kGroups); }
// Groups customer c is not in at the start: 5 and 16 are not multiples of 11 below 50.
int new_group(int64_t c, int k) { return static_cast<int>((7 * c + (k == 0 ? 5 : 16)) % kGroups); }

// One customer's change: groups (indexes) gained and lost.
struct Change {
    int64_t customer = 0;
    std::vector<int> adds, removes;
};

struct Data {
    int64_t customers = 0;
    std::vector<Change> changes;
    int64_t lower_bound = 0;   // customers with adds + customers with removes
    int64_t memberships_changed = 0;
    int64_t desired_rows = 0;
};

Data make_data(const Options& o) {
    Data d;
    d.customers = o.memberships / kPerCustomer;
    const int64_t stride = std::max(1, 100 / o.changed_pct);
    for (int64_t c = stride; c <= d.customers; c += stride) {
        Change ch;
        ch.customer = c;
        switch ((c / stride) % 3) {
        case 0: ch.adds = {new_group(c, 0)}; break;
        case 1: ch.removes = {start_group(c, 0)}; break;
        default:
            ch.adds = {new_group(c, 0), new_group(c, 1)};
            ch.removes = {start_group(c, 0), start_group(c, 1)};
        }
        d.lower_bound += (ch.adds.empty() ? 0 : 1) + (ch.removes.empty() ? 0 : 1);
        d.memberships_changed += static_cast<int64_t>(ch.adds.size() + ch.removes.size());
        d.desired_rows += static_cast<int64_t>(ch.adds.size()) - static_cast<int64_t>(ch.removes.size());
        d.changes.push_back(std::move(ch));
    }
    d.desired_rows += d.customers * kPerCustomer;
    return d;
}

// The CDP as it is before the change; returns the group ids by index.
std::vector<int64_t> seed_sim(Server& sim, const Data& d) {
    std::vector<int64_t> gid(kGroups);
    for (int g = 0; g < kGroups; ++g) gid[g] = sim.state().add_group("bench-" + std::to_string(g));
    sim.state().add_customers(1, d.customers);
    std::vector<std::pair<int64_t, int64_t>> pairs;
    pairs.reserve(d.customers * kPerCustomer);
    for (int64_t c = 1; c <= d.customers; ++c)
        for (int k = 0; k < kPerCustomer; ++k) pairs.emplace_back(c, gid[start_group(c, k)]);
    sim.state().add_memberships(pairs);
    return gid;
}

void load_table(pqxx::connection& conn, const std::string& table, const Data& d, bool changed) {
    std::vector<std::string> names;
    for (int g = 0; g < kGroups; ++g) names.push_back("bench-" + std::to_string(g));
    pqxx::work w(conn);
    w.exec0("CREATE TABLE " + table + " (customer_id bigint, group_name text)");
    pqxx::stream_to s(w, table, std::vector<std::string>{"customer_id", "group_name"});
    size_t next = 0;
    for (int64_t c = 1; c <= d.customers; ++c) {
        const Change* ch = nullptr;
        if (changed && next < d.changes.size() && d.changes[next].customer == c) ch = &d.changes[next++];
        for (int k = 0; k < kPerCustomer; ++k) {
            const int g = start_group(c, k);
            if (ch && std::find(ch->removes.begin(), ch->removes.end(), g) != ch->removes.end()) continue;
            s << std::make_tuple(c, names[g]);
        }
        if (ch)
            for (int g : ch->adds) s << std::make_tuple(c, names[g]);
    }
    s.complete();
    w.commit();
}



void write_config(const fs::path& path, const std::string& base_url, const std::string& dsn,
                  const std::string& schema, const std::string& src, double qps, const Options& o) {
    std::ofstream f(path);
    // The client's limit is a ceiling that must be > 0: "off" is one nothing reaches.
    f << "cdp:\n  base_url: " << base_url << "\n  token_env: CDP_SYNC_BENCH_TOKEN\n"
      << "  rate_limit_qps: " << (qps > 0 ? qps : 1000000) << "\n  max_in_flight: " << o.max_in_flight
      << "\n  page_size: " << o.page_size << "\n  timeout_ms: 60000\n"
      << "database:\n  dsn: \"" << dsn << "\"\n"
      << "  desired_memberships: \"SELECT customer_id, group_name FROM " << src << ".m\"\n"
      << "  schema: " << schema << "\n"
      << "sync:\n  max_deletes: 100000000\n"
      << "logging:\n  file: \"\"\n  level: warn\n";
}

// Membership writes as the simulator logged them: the largest count in any sliding second,
// and the sustained rate (mean of whole seconds from the first write, the last partial
// second left out; below two whole seconds, writes / span).
struct WriteRate {
    int64_t writes = 0;
    int64_t max_1s = 0;
    double mean = 0;
    double span_s = 0;
};

WriteRate write_rate(Server& sim) {
    std::vector<std::chrono::system_clock::time_point> t;
    for (const auto& e : sim.state().write_log())
        if (e.endpoint.find("customer-group-ref/customer") != std::string::npos) t.push_back(e.time);
    std::sort(t.begin(), t.end());
    WriteRate r;
    r.writes = static_cast<int64_t>(t.size());
    if (t.empty()) return r;
    size_t lo = 0;
    for (size_t hi = 0; hi < t.size(); ++hi) {
        while (t[hi] - t[lo] >= std::chrono::seconds(1)) ++lo;
        r.max_1s = std::max<int64_t>(r.max_1s, static_cast<int64_t>(hi - lo + 1));
    }
    r.span_s = std::chrono::duration<double>(t.back() - t.front()).count();
    const auto whole = static_cast<int64_t>(r.span_s);
    if (whole >= 2) {
        int64_t in_whole = 0;
        for (auto x : t)
            if (x - t.front() < std::chrono::seconds(whole)) ++in_whole;
        r.mean = static_cast<double>(in_whole) / static_cast<double>(whole);
    } else {
        r.mean = static_cast<double>(r.writes) / std::max(r.span_s, 1e-3);
    }
    return r;
}

int64_t endpoint_calls(const json& stats, const char* endpoint) {
    const auto& e = stats["endpoints"];
    return e.contains(endpoint) ? e[endpoint].value("calls", int64_t{0}) : int64_t{0};
}

struct Naive {
    std::string how = "off";  // run, computed, off
    int64_t calls = 0;
    int64_t failures = 0;
    double seconds = 0;
    WriteRate rate;
    int64_t sent_429 = 0;
    int64_t max_arrivals = 0;
    bool converged = false;
};

net::awaitable<void> naive_calls(cdpsync::cdp::Api& api, const Data& d, const std::vector<int64_t>& gid,
                                 int64_t& failures) {
    for (const auto& ch : d.changes) {
        for (int g : ch.adds) {
            cdpsync::cdp::MembershipChange m;
            m.customer_id = ch.customer;
            m.group_ids = {gid[g]};
            auto r = co_await api.customer_add_groups(std::move(m));
            if (!r.has_value()) ++failures;
        }
        for (int g : ch.removes) {
            cdpsync::cdp::MembershipChange m;
            m.customer_id = ch.customer;
            m.group_ids = {gid[g]};
            auto r = co_await api.customer_delete_groups(std::move(m));
            if (!r.has_value()) ++failures;
        }
    }
}

Naive run_naive(const Options& o, const Data& d) {
    Naive n;
    n.how = "run";
    n.calls = d.memberships_changed;
    cdpsync::sim::ServerOptions so;
    so.token = kToken;
    so.threads = 1;
    so.max_page_size = o.page_size;
    so.rate_limit_qps = o.qps;
    Server sim(so);
    sim.start();
    const auto gid = seed_sim(sim, d);
    sim.reset_stats();

    cdpsync::config::CdpConfig cdp;
    cdp.base_url = sim.base_url();
    cdp.token_env = "CDP_SYNC_BENCH_TOKEN";
    cdp.rate_limit_qps = o.qps > 0 ? o.qps : 1000000;
    cdp.max_in_flight = 1;
    cdp.timeout_ms = 60000;
    auto quiet = std::make_shared<spdlog::logger>("naive", std::make_shared<spdlog::sinks::null_sink_mt>());
    net::io_context io;
    cdpsync::cdp::Api api(io.get_executor(), cdpsync::cdp::ApiOptions::from_config(cdp),
                          cdpsync::config::TokenSource(cdp), quiet);
    std::exception_ptr error;
    const auto t0 = Clock::now();
    net::co_spawn(io, naive_calls(api, d, gid, n.failures), [&](std::exception_ptr e) { error = e; });
    io.run();
    n.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    api.stop();
    if (error) std::rethrow_exception(error);
    const json st = sim.stats();
    n.sent_429 = st.value("sent_429", int64_t{0});
    n.max_arrivals = st.value("max_arrivals_per_second", int64_t{0});
    n.rate = write_rate(sim);
    n.converged = n.failures == 0 && sim.state().membership_count() == d.desired_rows;
    sim.stop();
    return n;
}

std::string num(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string count(int64_t v) {
    std::string s = std::to_string(v), out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
        out += s[i];
    }
    return out;
}

std::string size_label(int64_t m) {
    if (m >= 1000000 && m % 1000000 == 0) return std::to_string(m / 1000000) + "M";
    if (m >= 1000 && m % 1000 == 0) return std::to_string(m / 1000) + "k";
    return count(m);
}

// The measured run's per-phase wall times, as cdp-sync recorded them on its run row.
json phase_seconds(pqxx::connection& conn, const std::string& schema) {
    try {
        pqxx::work w(conn);
        auto r = w.exec("SELECT coalesce(details->'phase_seconds', '{}')::text FROM " + schema +
                        ".run ORDER BY id DESC LIMIT 1");
        w.commit();
        return r.empty() ? json::object() : json::parse(r[0][0].as<std::string>());
    } catch (const std::exception& e) {
        std::cerr << "scenario_bench: phase times: " << e.what() << "\n";
        return json::object();
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--header") {
            std::printf("| memberships | changed customers | limit | cycle | tool | write calls (lower bound) "
                        "| member reads (pages needed) | wall s | write QPS: max 1 s / mean | 429s "
                        "| peak RSS MB | CPU s | vs the limit; naive ÷ cdp-sync | targets |\n"
                        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
            return 0;
        }
        if (i + 1 >= argc) usage("missing value for " + a);
        const std::string v = argv[++i];
        try {
            if (a == "--memberships") o.memberships = std::stoll(v);
            else if (a == "--changed-pct") o.changed_pct = std::stoi(v);
            else if (a == "--qps") o.qps = std::stod(v);
            else if (a == "--cycle") o.cycle = v;
            else if (a == "--naive") o.naive = v;
            else if (a == "--page-size") o.page_size = std::stoi(v);
            else if (a == "--max-in-flight") o.max_in_flight = std::stoi(v);
            else if (a == "--window" && (v == "sliding" || v == "fixed")) o.fixed_window = v == "fixed";
            else if (a == "--format") o.format = v;
            else if (a == "--json-out") o.json_out = v;
            else usage("unknown option " + a);
        } catch (const std::logic_error&) {
            usage("bad value for " + a + ": " + v);
        }
    }
    if (o.memberships < kPerCustomer || o.changed_pct < 1 || o.changed_pct > 100 || o.qps < 0 || o.page_size < 1 ||
        o.max_in_flight < 1 || (o.cycle != "resync" && o.cycle != "incremental") ||
        (o.naive != "auto" && o.naive != "run" && o.naive != "compute" && o.naive != "off") ||
        (o.format != "md" && o.format != "json"))
        usage("bad option value");
    const char* dsn_env = std::getenv("CDP_SYNC_TEST_DSN");
    if (!dsn_env) usage("set CDP_SYNC_TEST_DSN to a PostgreSQL DSN (scripts/pg-cluster.sh start DIR PORT)");
    const std::string dsn = dsn_env;
    spdlog::set_level(spdlog::level::err);
    ::setenv("CDP_SYNC_BENCH_TOKEN", kToken, 1);

    const Data d = make_data(o);
    const std::string suffix = "s" + std::to_string(::getpid());
    const std::string schema = "cdp_sync_" + suffix, src = "src_" + suffix;
    const fs::path dir = fs::temp_directory_path() / ("cdp-sync-scenario-" + suffix);
    fs::create_directories(dir);

    cdpsync::sim::ServerOptions so;
    so.token = kToken;
    so.threads = 1;
    so.max_page_size = o.page_size;
    Server sim(so);
    sim.start();
    const auto gid = seed_sim(sim, d);

    pqxx::connection conn(dsn);
    {
        pqxx::work w(conn);
        w.exec0("CREATE SCHEMA " + src);
        w.commit();
    }
    load_table(conn, src + ".m", d, false);
    load_table(conn, src + ".m_next", d, true);

    auto cleanup = [&] {
        try {
            pqxx::work w(conn);
            w.exec0("DROP SCHEMA IF EXISTS " + schema + " CASCADE; DROP SCHEMA " + src + " CASCADE");
            w.commit();
        } catch (const std::exception& e) {
            std::cerr << "scenario_bench: cleanup: " << e.what() << "\n";
        }
        std::error_code ec;
        fs::remove_all(dir, ec);
    };

    // Prime the mirror on the unchanged data: no writes.
    const fs::path config = dir / "config.yaml";
    write_config(config, sim.base_url(), dsn, schema, src, 0, o);
    Proc prime = run_cdp_sync(config, {"resync"}, dir / "prime.log");
    const int64_t prime_writes = sim.stats().value("write_calls", int64_t{0});
    if (prime.exit_code != 0 || prime_writes != 0) {
        std::cerr << "scenario_bench: priming resync: exit " << prime.exit_code << ", " << prime_writes
                  << " writes\n" << prime.output << "\n";
        cleanup();
        return 1;
    }
    {
        pqxx::work w(conn);
        w.exec0("DROP TABLE " + src + ".m; ALTER TABLE " + src + ".m_next RENAME TO m");
        w.commit();
    }

    int64_t pages_needed = 0;
    if (o.cycle == "resync")
        for (int g = 0; g < kGroups; ++g) {
            const auto n = static_cast<int64_t>(sim.state().members_of(gid[g]).size());
            pages_needed += std::max<int64_t>(1, (n + o.page_size - 1) / o.page_size);
        }

    sim.set_rate_limit(o.qps);
    if (o.fixed_window) {
        auto quirks = sim.state().quirks();
        quirks.limit.fixed_window = true;
        sim.state().set_quirks(quirks);
    }
    write_config(config, sim.base_url(), dsn, schema, src, o.qps, o);
    sim.reset_stats();
    Proc run = o.cycle == "resync" ? run_cdp_sync(config, {"resync"}, dir / "run.log")
                                   : run_cdp_sync(config, {"run", "--once"}, dir / "run.log");
    const json st = sim.stats();
    const int64_t writes = st.value("write_calls", int64_t{0});
    const int64_t reads = endpoint_calls(st, kReadEndpoint);
    const int64_t sent_429 = st.value("sent_429", int64_t{0});
    const int64_t all_calls = st.value("total", int64_t{0});
    const json phases = phase_seconds(conn, schema);
    const int64_t max_arrivals = st.value("max_arrivals_per_second", int64_t{0});
    const WriteRate rate = write_rate(sim);
    const bool converged = sim.state().membership_count() == d.desired_rows;
    if (run.exit_code != 0) std::cerr << "scenario_bench: cdp-sync exit " << run.exit_code << ":\n" << run.output << "\n";
    sim.stop();
    cleanup();

    Naive naive;
    naive.calls = d.memberships_changed;
    const double naive_estimate = o.qps > 0 ? static_cast<double>(d.memberships_changed) / o.qps : 0;
    const bool run_it = o.naive == "run" || (o.naive == "auto" && naive_estimate <= 15);
    if (run_it) {
        naive = run_naive(o, d);
    } else if (o.naive != "off" && o.qps > 0) {
        naive.how = "computed";
        naive.seconds = naive_estimate;
    }

    // Targets.
    std::vector<std::string> missed;
    if (run.exit_code != 0) missed.push_back("exit " + std::to_string(run.exit_code));
    if (!converged) missed.push_back("CDP != database");
    if (writes != d.lower_bound) missed.push_back("calls " + count(writes) + " != " + count(d.lower_bound));
    if (reads != pages_needed) missed.push_back("reads " + count(reads) + " != " + count(pages_needed));
    if (o.qps > 0) {
        if (static_cast<double>(max_arrivals) > std::floor(o.qps))
            missed.push_back("max 1 s (all requests) " + std::to_string(max_arrivals) + " > limit");
        // A sustained rate needs a few whole seconds of writes to mean anything.
        if (rate.span_s >= 3 && rate.mean < 0.95 * o.qps) missed.push_back("mean " + num("%.1f", rate.mean) + " < 95%");
    }
    if (sent_429 != 0) missed.push_back(std::to_string(sent_429) + " 429s");
    const double rss_mb = static_cast<double>(run.max_rss_kb) / 1024.0;
    if (rss_mb >= 200) missed.push_back("RSS " + num("%.0f", rss_mb) + " MB");
    const double call_ratio = writes > 0 ? static_cast<double>(naive.calls) / static_cast<double>(writes) : 0;
    const double time_ratio = run.seconds > 0 ? naive.seconds / run.seconds : 0;

    {
        json j{{"memberships", o.memberships}, {"customers", d.customers}, {"changed_pct", o.changed_pct},
               {"changed_customers", static_cast<int64_t>(d.changes.size())}, {"qps", o.qps}, {"cycle", o.cycle},
               {"page_size", o.page_size}, {"max_in_flight", o.max_in_flight},
               {"cdp_sync", {{"exit", run.exit_code}, {"converged", converged}, {"write_calls", writes},
                             {"lower_bound", d.lower_bound}, {"member_reads", reads}, {"pages_needed", pages_needed},
                             {"wall_s", run.seconds}, {"cpu_s", run.cpu_seconds}, {"peak_rss_mb", rss_mb},
                             {"max_writes_1s", rate.max_1s}, {"mean_writes_s", rate.mean},
                             {"write_span_s", rate.span_s}, {"max_arrivals_1s", max_arrivals},
                             {"sent_429", sent_429}, {"prime_wall_s", prime.seconds}, {"all_calls", all_calls},
                             {"phase_seconds", phases}}},
               {"naive", {{"how", naive.how}, {"calls", naive.calls}, {"failures", naive.failures},
                          {"wall_s", naive.seconds}, {"max_writes_1s", naive.rate.max_1s},
                          {"mean_writes_s", naive.rate.mean}, {"max_arrivals_1s", naive.max_arrivals},
                          {"sent_429", naive.sent_429}, {"converged", naive.converged},
                          {"call_ratio", call_ratio}, {"time_ratio", time_ratio}}},
               {"targets_missed", missed}};
        if (!o.json_out.empty()) std::ofstream(o.json_out, std::ios::app) << j.dump() << "\n";
        if (o.format == "json") {
            std::printf("%s\n", j.dump().c_str());
            return run.exit_code == 0 ? 0 : 1;
        }
    }

    const std::string lim = o.qps > 0 ? num("%g QPS", o.qps) + (o.fixed_window ? " fixed" : "") : "off";
    const std::string scen = "| " + size_label(o.memberships) + " | " + std::to_string(o.changed_pct) + "% (" +
                             count(static_cast<int64_t>(d.changes.size())) + ") | " + lim + " | " +
                             (o.cycle == "resync" ? "full resync" : "incremental") + " | ";
    std::cerr << "phases of the measured run (s): " << phases.dump() << "\n";
    // Against the limit: wall time over what the calls alone cost at the limit; with the limit
    // off: the sustained write rate beside the naive loop's.
    std::string versus;
    if (o.qps > 0 && all_calls > 0)
        versus = "wall ÷ (" + count(all_calls) + " calls ÷ QPS) = " +
                 num("%.3f×", run.seconds / (static_cast<double>(all_calls) / o.qps));
    else if (o.qps <= 0 && naive.how == "run")
        versus = num("writes/s %.0f vs naive ", rate.mean) + num("%.0f", naive.rate.mean);
    std::string targets = missed.empty() ? "ok" : "NO: ";
    for (size_t i = 0; i < missed.size(); ++i) targets += (i ? ", " : "") + missed[i];
    std::printf("%scdp-sync | %s (%s) | %s (%s) | %.2f | %lld / %.1f | %lld | %.1f | %.2f | %s | %s |\n", scen.c_str(),
                count(writes).c_str(), count(d.lower_bound).c_str(), count(reads).c_str(), count(pages_needed).c_str(),
                run.seconds, static_cast<long long>(rate.max_1s), rate.mean, static_cast<long long>(sent_429), rss_mb,
                run.cpu_seconds, versus.c_str(), targets.c_str());
    if (naive.how == "run") {
        std::printf("%snaive | %s | — | %.2f | %lld / %.1f | %lld | — | — | calls %.2f×, time %.2f× | %s |\n",
                    scen.c_str(), count(naive.calls).c_str(), naive.seconds, static_cast<long long>(naive.rate.max_1s),
                    naive.rate.mean, static_cast<long long>(naive.sent_429), call_ratio, time_ratio,
                    naive.converged ? "sequential, 1 call per membership" : "NO: naive did not converge");
    } else if (naive.how == "computed") {
        std::printf("%snaive | %s | — | %.1f (computed: calls ÷ %g) | — | — | — | — | calls %.2f×, time %.2f× | "
                    "not run: would take %.0f s |\n",
                    scen.c_str(), count(naive.calls).c_str(), naive.seconds, o.qps, call_ratio, time_ratio,
                    naive.seconds);
    }
    return run.exit_code == 0 ? 0 : 1;
}
