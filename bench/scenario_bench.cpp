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
#include <atomic>
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
#include <thread>
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

constexpr int kPerCustomer = 5;
constexpr const char* kToken = "bench-token";
constexpr const char* kReadEndpoint = "customer-group/getCustomerPageByGroupId";

struct Options {
    int64_t memberships = 10000;
    int groups = 50;
    int changed_pct = 5;
    double qps = 0;
    std::vector<std::string> cycles{"incremental"};  // measured in this order
    bool prime = true;  // a resync on the unchanged data first, not measured
    std::string naive = "auto";
    int page_size = 1000;
    int max_in_flight = 8;
    bool fixed_window = false;  // the simulator's limit.fixed_window quirk
    std::string format = "md";  // md, json, scale
    std::string json_out;  // also append the JSON object to this file
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "scenario_bench: " << why
              << "\nusage: scenario_bench [--memberships N] [--groups N>=45] [--changed-pct P] [--qps Q]\n"
                 "                      [--cycle C[,C...]] (C: resync|incremental|plan-full) [--no-prime]\n"
                 "                      [--naive auto|run|compute|off] [--page-size N] [--max-in-flight N]\n"
                 "                      [--window sliding|fixed]\n"
                 "                      [--format md|json|scale] [--json-out FILE]\n"
                 "       scenario_bench --header [md|scale]\n";
    std::exit(2);
}


// Customer c's k-th group of `groups` (at least 45, so 11k < groups keeps the 5 distinct).
int start_group(int64_t c, int k, int groups) { return static_cast<int>((7 * c + 11 * k) % groups); }
// Groups customer c is not in at the start: 5 and 16 are not multiples of 11 below 45.
int new_group(int64_t c, int k, int groups) { return static_cast<int>((7 * c + (k == 0 ? 5 : 16)) % groups); }

// One customer's change: groups (indexes) gained and lost.
struct Change {
    int64_t customer = 0;
    std::vector<int> adds, removes;
};

struct Data {
    int groups = 50;
    int64_t customers = 0;
    int64_t stride = 20;  // every stride-th customer changes
    std::vector<Change> changes;
    int64_t lower_bound = 0;   // customers with adds + customers with removes
    int64_t memberships_changed = 0;
    int64_t desired_rows = 0;
};

Data make_data(const Options& o) {
    Data d;
    d.groups = o.groups;
    d.customers = o.memberships / kPerCustomer;
    d.stride = std::max(1, 100 / o.changed_pct);
    const int64_t stride = d.stride;
    const int G = d.groups;
    for (int64_t c = stride; c <= d.customers; c += stride) {
        Change ch;
        ch.customer = c;
        switch ((c / stride) % 3) {
        case 0: ch.adds = {new_group(c, 0, G)}; break;
        case 1: ch.removes = {start_group(c, 0, G)}; break;
        default:
            ch.adds = {new_group(c, 0, G), new_group(c, 1, G)};
            ch.removes = {start_group(c, 0, G), start_group(c, 1, G)};
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
    std::vector<int64_t> gid(d.groups);
    for (int g = 0; g < d.groups; ++g) gid[g] = sim.state().add_group("bench-" + std::to_string(g));
    sim.state().add_customers(1, d.customers);
    std::vector<std::pair<int64_t, int64_t>> pairs;
    pairs.reserve(d.customers * kPerCustomer);
    for (int64_t c = 1; c <= d.customers; ++c)
        for (int k = 0; k < kPerCustomer; ++k) pairs.emplace_back(c, gid[start_group(c, k, d.groups)]);
    sim.state().add_memberships(pairs);
    return gid;
}

// The database's table, generated in PostgreSQL (no rows shipped): the data above, and with
// `changed` every stride-th customer changed as make_data says.
void load_table(pqxx::connection& conn, const std::string& table, const Data& d, bool changed) {
    const std::string G = std::to_string(d.groups), S = std::to_string(d.stride), N = std::to_string(d.customers);
    const std::string variant = "((c / " + S + ") % 3)";
    const std::string is_changed = "(" + std::string(changed ? "true" : "false") + " AND c % " + S + " = 0)";
    std::string sql = "CREATE TABLE " + table + " AS SELECT c AS customer_id, 'bench-' || ((7 * c + 11 * k) % " + G +
                      ") AS group_name FROM generate_series(1::bigint, " + N + ") c, generate_series(0, " +
                      std::to_string(kPerCustomer - 1) + ") k WHERE NOT (" + is_changed + " AND ((" + variant +
                      " = 1 AND k = 0) OR (" + variant + " = 2 AND k < 2)))";
    if (changed)
        sql += " UNION ALL SELECT c, 'bench-' || ((7 * c + 5) % " + G + ") FROM generate_series(" + S + "::bigint, " +
               N + ", " + S + ") c WHERE " + variant + " IN (0, 2) UNION ALL SELECT c, 'bench-' || ((7 * c + 16) % " +
               G + ") FROM generate_series(" + S + "::bigint, " + N + ", " + S + ") c WHERE " + variant + " = 2";
    pqxx::work w(conn);
    w.exec0(sql);
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
            if (!r.ok()) ++failures;
        }
        for (int g : ch.removes) {
            cdpsync::cdp::MembershipChange m;
            m.customer_id = ch.customer;
            m.group_ids = {gid[g]};
            auto r = co_await api.customer_delete_groups(std::move(m));
            if (!r.ok()) ++failures;
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


// PostgreSQL's disk use around one cdp-sync command: temporary files (pg_stat_database's
// counters, and the largest pgsql_tmp total a sampler saw every 100 ms), the database's
// growth, and the cdp-sync schema's tables (the mirror, the journal) at the end.
struct PgUsage {
    int64_t temp_files = 0;
    int64_t temp_bytes = 0;
    int64_t peak_temp_bytes = 0;
    int64_t db_bytes_before = 0;
    int64_t db_bytes_after = 0;
    int64_t schema_bytes = 0;
    int64_t mirror_rows = 0;
    int64_t mirror_bytes = 0;
    int64_t journal_rows = 0;
    int64_t journal_bytes = 0;
};

struct PgCounters {
    int64_t temp_files = 0, temp_bytes = 0, db_bytes = 0;
};

PgCounters pg_counters(pqxx::connection& conn) {
    pqxx::work w(conn);
    auto r = w.exec1("SELECT temp_files, temp_bytes, pg_database_size(current_database()) FROM pg_stat_database "
                     "WHERE datname = current_database()");
    w.commit();
    return {r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<int64_t>()};
}

void pg_schema_sizes(pqxx::connection& conn, const std::string& schema, PgUsage& u) {
    pqxx::work w(conn);
    u.schema_bytes = w.exec_params1("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
                                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                    "WHERE n.nspname = $1 AND c.relkind = 'r'",
                                    schema)[0]
                         .as<int64_t>();
    auto size_of = [&](const char* table, int64_t& rows, int64_t& bytes) {
        const std::string t = schema + "." + table;
        auto r = w.exec1("SELECT count(*), pg_total_relation_size('" + t + "') FROM " + t);
        rows = r[0].as<int64_t>();
        bytes = r[1].as<int64_t>();
    };
    size_of("remote_member", u.mirror_rows, u.mirror_bytes);
    size_of("op", u.journal_rows, u.journal_bytes);
    w.commit();
}

// Samples the size of PostgreSQL's temporary files while a command runs.
class TempSampler {
public:
    explicit TempSampler(const std::string& dsn) : conn_(dsn), thread_([this] { loop(); }) {}
    ~TempSampler() { stop(); }
    int64_t stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        return peak_;
    }

private:
    void loop() {
        while (!stop_) {
            try {
                pqxx::work w(conn_);
                peak_ = std::max(peak_, w.exec1("SELECT coalesce(sum(size), 0)::bigint FROM pg_ls_tmpdir()")[0].as<int64_t>());
                w.commit();
            } catch (const std::exception&) {
                // pgsql_tmp does not exist until the first temporary file: nothing to count.
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    pqxx::connection conn_;
    std::atomic<bool> stop_{false};
    int64_t peak_ = 0;
    std::thread thread_;
};

std::string bytes_label(int64_t b) {
    if (b >= (int64_t{1} << 30)) return num("%.2f GiB", static_cast<double>(b) / (1 << 30));
    return num("%.1f MiB", static_cast<double>(b) / (1 << 20));
}

std::string load_average() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return a + " " + b + " " + c;
}

// One measured cdp-sync command.
struct Cycle {
    std::string name;  // resync, incremental, plan-full
    Proc proc;
    int64_t writes = 0, reads = 0, pages_needed = 0, sent_429 = 0, all_calls = 0, max_arrivals = 0;
    int64_t lower_bound = 0, planned_writes = -1;  // planned: what `plan --full` printed
    int64_t identity_reads = 0;  // the one member page read to confirm ids before the first removal
    WriteRate rate;
    bool converged = false;
    json phases;
    PgUsage pg;
    std::string load_before, load_after;
};

const char* cycle_label(const std::string& c) {
    return c == "resync" ? "full resync" : c == "plan-full" ? "plan --full" : "incremental";
}

int64_t pages_needed(Server& sim, const std::vector<int64_t>& gid, int page_size) {
    int64_t pages = 0;
    for (int64_t g : gid) {
        const auto n = static_cast<int64_t>(sim.state().members_of(g).size());
        pages += std::max<int64_t>(1, (n + page_size - 1) / page_size);
    }
    return pages;
}

// The write calls `plan --format json` printed, or -1.
int64_t planned_writes(const std::string& output) {
    const auto at = output.find('{');
    if (at == std::string::npos) return -1;
    try {
        return json::parse(output.substr(at)).value("write_calls", int64_t{-1});
    } catch (const std::exception&) {
        return -1;
    }
}

Cycle run_cycle(const std::string& name, Server& sim, const std::vector<int64_t>& gid, pqxx::connection& conn,
                const std::string& dsn, const std::string& schema, const fs::path& config, const fs::path& dir,
                const Options& o) {
    Cycle c;
    c.name = name;
    const bool reads_all = name != "incremental";
    if (reads_all) c.pages_needed = pages_needed(sim, gid, o.page_size);
    sim.reset_stats();
    sim.state().clear_write_log();
    const PgCounters before = pg_counters(conn);
    c.load_before = load_average();
    {
        TempSampler temp(dsn);
        const fs::path log = dir / (name + ".log");
        c.proc = name == "resync"      ? run_cdp_sync(config, {"resync"}, log)
                 : name == "plan-full" ? run_cdp_sync(config, {"plan", "--full", "--format", "json"}, log)
                                       : run_cdp_sync(config, {"run", "--once"}, log);
        c.pg.peak_temp_bytes = temp.stop();
    }
    c.load_after = load_average();
    const PgCounters after = pg_counters(conn);
    c.pg.temp_files = after.temp_files - before.temp_files;
    c.pg.temp_bytes = after.temp_bytes - before.temp_bytes;
    c.pg.db_bytes_before = before.db_bytes;
    c.pg.db_bytes_after = after.db_bytes;
    try {
        pg_schema_sizes(conn, schema, c.pg);
    } catch (const std::exception& e) {
        std::cerr << "scenario_bench: schema sizes: " << e.what() << "\n";
    }
    const json st = sim.stats();
    c.writes = st.value("write_calls", int64_t{0});
    c.reads = endpoint_calls(st, kReadEndpoint);
    c.sent_429 = st.value("sent_429", int64_t{0});
    c.all_calls = st.value("total", int64_t{0});
    c.max_arrivals = st.value("max_arrivals_per_second", int64_t{0});
    c.rate = write_rate(sim);
    c.phases = phase_seconds(conn, schema);
    if (name == "plan-full") c.planned_writes = planned_writes(c.proc.output);
    if (c.proc.exit_code != 0)
        std::cerr << "scenario_bench: cdp-sync " << name << " exit " << c.proc.exit_code << ":\n" << c.proc.output << "\n";
    return c;
}

// The database's two versions of the data: `m` is what cdp-sync reads, `m_next` the other.
void swap_tables(pqxx::connection& conn, const std::string& src) {
    pqxx::work w(conn);
    w.exec0("ALTER TABLE " + src + ".m RENAME TO m_swap; ALTER TABLE " + src + ".m_next RENAME TO m; ALTER TABLE " +
            src + ".m_swap RENAME TO m_next");
    w.commit();
}

std::vector<std::string> cycle_targets(const Cycle& c, const Options& o) {
    std::vector<std::string> missed;
    const int64_t expected_writes = c.name == "plan-full" ? 0 : c.lower_bound;
    if (c.proc.exit_code != 0) missed.push_back("exit " + std::to_string(c.proc.exit_code));
    if (!c.converged) missed.push_back(c.name == "plan-full" ? "CDP changed" : "CDP != database");
    if (c.writes != expected_writes) missed.push_back("calls " + count(c.writes) + " != " + count(expected_writes));
    if (c.name == "plan-full" && c.planned_writes != c.lower_bound)
        missed.push_back("planned " + count(c.planned_writes) + " != " + count(c.lower_bound));
    if (c.reads != c.pages_needed + c.identity_reads)
        missed.push_back("reads " + count(c.reads) + " != " + count(c.pages_needed + c.identity_reads));
    if (o.qps > 0) {
        if (static_cast<double>(c.max_arrivals) > std::floor(o.qps))
            missed.push_back("max 1 s (all requests) " + std::to_string(c.max_arrivals) + " > limit");
        // A sustained rate needs a few whole seconds of writes to mean anything.
        if (c.rate.span_s >= 3 && c.rate.mean < 0.95 * o.qps)
            missed.push_back("mean " + num("%.1f", c.rate.mean) + " < 95%");
    }
    if (c.sent_429 != 0) missed.push_back(std::to_string(c.sent_429) + " 429s");
    const double rss_mb = static_cast<double>(c.proc.max_rss_kb) / 1024.0;
    if (rss_mb >= 200) missed.push_back("RSS " + num("%.0f", rss_mb) + " MB");
    return missed;
}

std::string joined(const std::vector<std::string>& missed) {
    std::string targets = missed.empty() ? "ok" : "NO: ";
    for (size_t i = 0; i < missed.size(); ++i) targets += (i ? ", " : "") + missed[i];
    return targets;
}

json cycle_json(const Cycle& c, const Options& o, const Data& d, const Naive& naive, const Proc& prime) {
    const double rss_mb = static_cast<double>(c.proc.max_rss_kb) / 1024.0;
    const double call_ratio = c.writes > 0 ? static_cast<double>(naive.calls) / static_cast<double>(c.writes) : 0;
    const double time_ratio = c.proc.seconds > 0 ? naive.seconds / c.proc.seconds : 0;
    return json{{"memberships", o.memberships}, {"groups", d.groups}, {"customers", d.customers},
                {"changed_pct", o.changed_pct}, {"changed_customers", static_cast<int64_t>(d.changes.size())},
                {"qps", o.qps}, {"cycle", c.name}, {"page_size", o.page_size}, {"max_in_flight", o.max_in_flight},
                {"load_before", c.load_before}, {"load_after", c.load_after},
                {"cdp_sync", {{"exit", c.proc.exit_code}, {"converged", c.converged}, {"write_calls", c.writes},
                              {"lower_bound", c.lower_bound}, {"planned_writes", c.planned_writes},
                              {"member_reads", c.reads}, {"pages_needed", c.pages_needed},
                              {"identity_reads", c.identity_reads},
                              {"wall_s", c.proc.seconds}, {"cpu_s", c.proc.cpu_seconds}, {"peak_rss_mb", rss_mb},
                              {"max_writes_1s", c.rate.max_1s}, {"mean_writes_s", c.rate.mean},
                              {"write_span_s", c.rate.span_s}, {"max_arrivals_1s", c.max_arrivals},
                              {"sent_429", c.sent_429}, {"prime_wall_s", prime.seconds},
                              {"prime_peak_rss_mb", static_cast<double>(prime.max_rss_kb) / 1024.0},
                              {"all_calls", c.all_calls}, {"phase_seconds", c.phases}}},
                {"postgres", {{"temp_files", c.pg.temp_files}, {"temp_bytes", c.pg.temp_bytes},
                              {"peak_temp_bytes", c.pg.peak_temp_bytes}, {"db_bytes_before", c.pg.db_bytes_before},
                              {"db_bytes_after", c.pg.db_bytes_after}, {"schema_bytes", c.pg.schema_bytes},
                              {"mirror_rows", c.pg.mirror_rows}, {"mirror_bytes", c.pg.mirror_bytes},
                              {"journal_rows", c.pg.journal_rows}, {"journal_bytes", c.pg.journal_bytes}}},
                {"naive", {{"how", naive.how}, {"calls", naive.calls}, {"failures", naive.failures},
                           {"wall_s", naive.seconds}, {"max_writes_1s", naive.rate.max_1s},
                           {"mean_writes_s", naive.rate.mean}, {"max_arrivals_1s", naive.max_arrivals},
                           {"sent_429", naive.sent_429}, {"converged", naive.converged},
                           {"call_ratio", call_ratio}, {"time_ratio", time_ratio}}},
                {"targets_missed", cycle_targets(c, o)}};
}

constexpr const char* kScaleHeader =
    "| memberships / groups | changed customers | cycle | write calls (lower bound) | member reads (pages needed) "
    "| wall s | CPU s | peak RSS MB | PG temp files: written / peak | DB growth | cdp_sync schema (mirror rows, "
    "B/row) | load before → after | targets |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n";

void print_scale_row(const Cycle& c, const Options& o, const Data& d) {
    const int64_t bpr = c.pg.mirror_rows > 0 ? c.pg.mirror_bytes / c.pg.mirror_rows : 0;
    std::printf("| %s / %d | %d%% (%s) | %s | %s (%s) | %s (%s) | %.1f | %.1f | %.1f | %lld, %s / %s | %s | %s (%s, %lld) "
                "| %s → %s | %s |\n",
                size_label(o.memberships).c_str(), d.groups, o.changed_pct,
                count(static_cast<int64_t>(d.changes.size())).c_str(), cycle_label(c.name),
                count(c.writes).c_str(), count(c.name == "plan-full" ? 0 : c.lower_bound).c_str(),
                count(c.reads).c_str(), count(c.pages_needed + c.identity_reads).c_str(), c.proc.seconds, c.proc.cpu_seconds,
                static_cast<double>(c.proc.max_rss_kb) / 1024.0, static_cast<long long>(c.pg.temp_files),
                bytes_label(c.pg.temp_bytes).c_str(), bytes_label(c.pg.peak_temp_bytes).c_str(),
                bytes_label(c.pg.db_bytes_after - c.pg.db_bytes_before).c_str(), bytes_label(c.pg.schema_bytes).c_str(),
                count(c.pg.mirror_rows).c_str(), static_cast<long long>(bpr), c.load_before.c_str(),
                c.load_after.c_str(), joined(cycle_targets(c, o)).c_str());
}

void print_md_rows(const Cycle& c, const Options& o, const Data& d, const Naive& naive) {
    const double rss_mb = static_cast<double>(c.proc.max_rss_kb) / 1024.0;
    const double call_ratio = c.writes > 0 ? static_cast<double>(naive.calls) / static_cast<double>(c.writes) : 0;
    const double time_ratio = c.proc.seconds > 0 ? naive.seconds / c.proc.seconds : 0;
    const std::string lim = o.qps > 0 ? num("%g QPS", o.qps) + (o.fixed_window ? " fixed" : "") : "off";
    const std::string scen = "| " + size_label(o.memberships) + (d.groups != 50 ? " / " + std::to_string(d.groups) + " groups" : "") +
                             " | " + std::to_string(o.changed_pct) + "% (" +
                             count(static_cast<int64_t>(d.changes.size())) + ") | " + lim + " | " +
                             cycle_label(c.name) + " | ";
    // Against the limit: wall time over what the calls alone cost at the limit; with the limit
    // off: the sustained write rate beside the naive loop's.
    std::string versus;
    if (o.qps > 0 && c.all_calls > 0)
        versus = "wall ÷ (" + count(c.all_calls) + " calls ÷ QPS) = " +
                 num("%.3f×", c.proc.seconds / (static_cast<double>(c.all_calls) / o.qps));
    else if (o.qps <= 0 && c.writes > 0)
        versus = num("writes/s %.0f", c.rate.mean) +
                 (naive.how == "run" ? num(" vs naive %.0f", naive.rate.mean) : std::string(" (naive not run)"));
    std::printf("%scdp-sync | %s (%s) | %s (%s) | %.2f | %lld / %.1f | %lld | %.1f | %.2f | %s | %s |\n", scen.c_str(),
                count(c.writes).c_str(), count(c.name == "plan-full" ? 0 : c.lower_bound).c_str(),
                count(c.reads).c_str(), count(c.pages_needed + c.identity_reads).c_str(), c.proc.seconds,
                static_cast<long long>(c.rate.max_1s), c.rate.mean, static_cast<long long>(c.sent_429), rss_mb,
                c.proc.cpu_seconds, versus.c_str(), joined(cycle_targets(c, o)).c_str());
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
}

std::vector<std::string> split_cycles(const std::string& v) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at <= v.size()) {
        const size_t comma = std::min(v.find(',', at), v.size());
        out.push_back(v.substr(at, comma - at));
        at = comma + 1;
    }
    return out;
}

bool valid(const Options& o) {
    for (const auto& c : o.cycles)
        if (c != "resync" && c != "incremental" && c != "plan-full") return false;
    return o.memberships >= kPerCustomer && o.groups >= 45 && o.changed_pct >= 1 && o.changed_pct <= 100 &&
           o.qps >= 0 && o.page_size >= 1 && o.max_in_flight >= 1 && !o.cycles.empty() &&
           (o.naive == "auto" || o.naive == "run" || o.naive == "compute" || o.naive == "off") &&
           (o.format == "md" || o.format == "json" || o.format == "scale");
}

void print_header(const std::string& which) {
    if (which == "scale") {
        std::printf("%s", kScaleHeader);
        return;
    }
    std::printf("| memberships | changed customers | limit | cycle | tool | write calls (lower bound) "
                "| member reads (pages needed) | wall s | write QPS: max 1 s / mean | 429s "
                "| peak RSS MB | CPU s | vs the limit; naive ÷ cdp-sync | targets |\n"
                "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--header") {
            print_header(i + 1 < argc ? argv[i + 1] : "md");
            std::exit(0);
        }
        if (a == "--no-prime") {
            o.prime = false;
            continue;
        }
        if (i + 1 >= argc) usage("missing value for " + a);
        const std::string v = argv[++i];
        try {
            if (a == "--memberships") o.memberships = std::stoll(v);
            else if (a == "--groups") o.groups = std::stoi(v);
            else if (a == "--changed-pct") o.changed_pct = std::stoi(v);
            else if (a == "--qps") o.qps = std::stod(v);
            else if (a == "--cycle") o.cycles = split_cycles(v);
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
    if (!valid(o)) usage("bad option value");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
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
    Proc prime;
    if (o.prime) {
        write_config(config, sim.base_url(), dsn, schema, src, 0, o);
        prime = run_cdp_sync(config, {"resync"}, dir / "prime.log");
        const int64_t prime_writes = sim.stats().value("write_calls", int64_t{0});
        if (prime.exit_code != 0 || prime_writes != 0) {
            std::cerr << "scenario_bench: priming resync: exit " << prime.exit_code << ", " << prime_writes
                      << " writes\n" << prime.output << "\n";
            cleanup();
            return 1;
        }
        std::cerr << "scenario_bench: primed in " << prime.seconds << " s, peak RSS "
                  << static_cast<double>(prime.max_rss_kb) / 1024.0 << " MB\n";
    }

    sim.set_rate_limit(o.qps);
    if (o.fixed_window) {
        auto quirks = sim.state().quirks();
        quirks.limit.fixed_window = true;
        sim.state().set_quirks(quirks);
    }
    write_config(config, sim.base_url(), dsn, schema, src, o.qps, o);

    // Each cycle has the same change to make: the database switches to the other version of
    // the data whenever the CDP already holds the one cdp-sync reads (the change, or its undo).
    bool cdp_holds_changed = false, db_is_changed = false;
    // The first run that removes reads one member page to confirm the ids (README, "check").
    bool identity_confirmed = false;  // the priming resync removes nothing
    std::vector<Cycle> cycles;
    for (const auto& name : o.cycles) {
        if (db_is_changed == cdp_holds_changed) {
            swap_tables(conn, src);
            db_is_changed = !db_is_changed;
        }
        Cycle c = run_cycle(name, sim, gid, conn, dsn, schema, config, dir, o);
        c.lower_bound = d.lower_bound;  // the undo has the same: its adds are the change's removes
        if (name != "plan-full" && !identity_confirmed) {
            c.identity_reads = 1;
            identity_confirmed = true;
        }
        const int64_t target_rows = db_is_changed ? d.desired_rows : d.customers * kPerCustomer;
        const int64_t before_rows = cdp_holds_changed ? d.desired_rows : d.customers * kPerCustomer;
        const int64_t now_rows = sim.state().membership_count();
        c.converged = name == "plan-full" ? now_rows == before_rows : now_rows == target_rows;
        if (name != "plan-full" && c.converged) cdp_holds_changed = db_is_changed;
        std::cerr << "phases of the measured " << name << " (s): " << c.phases.dump() << "\n";
        cycles.push_back(std::move(c));
    }
    sim.stop();
    cleanup();

    // The naive baseline makes the change once (it is the same size for every cycle).
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

    bool ok = true;
    for (const auto& c : cycles) {
        ok = ok && c.proc.exit_code == 0;
        const json j = cycle_json(c, o, d, naive, prime);
        if (!o.json_out.empty()) std::ofstream(o.json_out, std::ios::app) << j.dump() << "\n";
        if (o.format == "json") std::printf("%s\n", j.dump().c_str());
        else if (o.format == "scale") print_scale_row(c, o, d);
        else print_md_rows(c, o, d, c.name == "plan-full" ? Naive{} : naive);
    }
    return ok ? 0 : 1;
}
