#include "daemon/status.hpp"

#include <cmath>

#include <fmt/format.h>

#include "store/control.hpp"
#include "store/status.hpp"
#include "store/session.hpp"

namespace cdpsync::daemon {
namespace {

using json = nlohmann::json;

template <typename T>
json opt(const std::optional<T>& v) {
    return v ? json(*v) : json(nullptr);
}

json leader_json(const store::LeaderInfo& l) {
    return {{"backend_pid", l.backend_pid},       {"host", l.host},
            {"phase", l.phase},                   {"pid", opt(l.pid)},
            {"phase_seconds", opt(l.phase_seconds)}, {"heartbeat_age_s", opt(l.heartbeat_age_s)},
            {"next_full_in_s", opt(l.next_full_in_s)}, {"leader_for_s", opt(l.leader_for_s)}};
}

json run_json(const store::RunRow& r) {
    const auto& c = r.counts;
    return {{"id", r.id},           {"mode", store::to_string(r.mode)}, {"phase", store::to_string(r.phase)},
            {"status", store::to_string(r.status)},   {"started_at", r.started_at}, {"seconds", r.seconds},
            {"rows", c.rows_read},  {"adds", c.adds},          {"removes", c.removes},
            {"ops_planned", c.ops_planned}, {"ops_done", c.ops_done}, {"ops_failed", c.ops_failed},
            {"ops_permanent", c.ops_permanent}, {"calls", c.calls}, {"retries", c.retries},
            {"failures", c.failures}, {"error", r.error}};
}

std::string ago(const json& seconds) {
    if (!seconds.is_number()) return "never";
    double s = seconds.get<double>();
    if (s < 120) return fmt::format("{:.0f} s", s);
    if (s < 7200) return fmt::format("{:.0f} min", s / 60);
    if (s < 172800) return fmt::format("{:.1f} h", s / 3600);
    return fmt::format("{:.1f} days", s / 86400);
}

}  // namespace

json collect_status(const config::Config& cfg, int runs) {
    const std::string& schema = cfg.database.schema;
    auto conn = store::connect_control(cfg.database.dsn, "cdp-sync status");
    const auto f = store::read_status(*conn, schema, runs);
    json out;
    out["schema"] = schema;
    out["database"] = store::redact_dsn(cfg.database.dsn);
    out["leader"] = f.leader ? leader_json(*f.leader) : json(nullptr);
    out["schema_version"] = f.schema_version;
    if (f.schema_version > 0 && f.schema_version < store::kSchemaVersion)
        out["migration_needed"] = fmt::format(
            "schema {} is at version {}, this cdp-sync needs version {}: the next run (run --once, resync or the "
            "daemon) migrates it; until then its runs and ops are not shown",
            schema, f.schema_version, store::kSchemaVersion);
    out["runs"] = json::array();
    for (const auto& r : f.runs) out["runs"].push_back(run_json(r));
    out["last_success_s"] = opt(f.last_success_s);
    if (f.has_runs) out["last_full_success_s"] = opt(f.last_full_success_s);
    out["ops"] = {{"pending", 0}, {"failed", 0}, {"permanent", 0}, {"top_errors", json::array()}};
    for (const auto& [state, n] : f.open_ops) out["ops"][state] = n;
    for (const auto& e : f.top_errors)
        out["ops"]["top_errors"].push_back({{"msg", e.msg}, {"count", e.count}, {"example_customer", e.example_customer},
                                            {"state", e.state}, {"http_status", opt(e.http_status)},
                                            {"cdp_code", opt(e.cdp_code)}});
    if (f.has_ops) {
        out["ops"]["waiting"] = json::array();
        for (const auto& w : f.waiting)
            out["ops"]["waiting"].push_back(
                {{"state", w.state}, {"msg", w.msg}, {"count", w.count}, {"next_in_s", w.next_in_s}});
    }
    if (f.breaker) {
        out["breaker"] = {{"state", f.breaker->state}, {"reason", f.breaker->reason}, {"since", f.breaker->since}};
        out["max_groups_per_call_learned"] = opt(f.breaker->max_groups_per_call);
    }
    out["resync"] = {{"queued", f.resync_queued}, {"running", f.resync_running}};
    return out;
}

namespace {

std::string leader_text(const json& l) {
    std::string o;
    if (l.is_null()) {
        o += "Leader:       none (no cdp-sync daemon holds the leader lock)\n";
    } else {
        o += fmt::format("Leader:       pid {} on {} (PostgreSQL backend {}), leader for {}\n",
                         l["pid"].is_null() ? std::string("?") : std::to_string(l["pid"].get<int>()),
                         l["host"].get<std::string>().empty() ? "?" : l["host"].get<std::string>(),
                         l["backend_pid"].get<int>(), ago(l["leader_for_s"]));
        o += fmt::format("Phase:        {} (for {}, heartbeat {} ago)\n", l["phase"].get<std::string>(),
                         ago(l["phase_seconds"]), ago(l["heartbeat_age_s"]));
        if (l["next_full_in_s"].is_number())
            o += fmt::format("Next full:    in {}\n", ago(l["next_full_in_s"]));
    }
    return o;
}

}  // namespace

std::string status_text(const json& s) {
    std::string o;
    o += fmt::format("Schema:       {} on {}\n", s["schema"].get<std::string>(), s["database"].get<std::string>());
    if (s.contains("migration_needed"))
        o += fmt::format("Migration:    {}\n", s["migration_needed"].get<std::string>());
    o += leader_text(s["leader"]);
    o += fmt::format("Last success: {}{}\n", ago(s["last_success_s"]), s["last_success_s"].is_number() ? " ago" : "");
    if (s.contains("last_full_success_s"))
        o += fmt::format("Last full:    {}{}\n", ago(s["last_full_success_s"]),
                         s["last_full_success_s"].is_number() ? " ago" : "");
    const auto& rq = s["resync"];
    o += fmt::format("Resync:       {} queued, {} in progress\n", rq["queued"].get<int64_t>(), rq["running"].get<int64_t>());
    const auto& ops = s["ops"];
    o += fmt::format("Open ops:     {} pending, {} failed (retried next run), {} permanent\n",
                     ops["pending"].get<int64_t>(), ops["failed"].get<int64_t>(), ops["permanent"].get<int64_t>());
    if (s.contains("breaker") && s["breaker"]["state"] != "closed")
        o += fmt::format("CDP breaker:  {} since {} ({}); the next run probes with one op\n",
                         s["breaker"]["state"].get<std::string>(), s["breaker"]["since"].get<std::string>(),
                         s["breaker"]["reason"].get<std::string>());
    if (ops.contains("waiting") && !ops["waiting"].empty()) {
        o += "Waiting (backoff; `cdp-sync retry-failed` sends them on the next run):\n";
        for (const auto& w : ops["waiting"])
            o += fmt::format("  {:>6} x {:<9} next in {}: {}\n", w["count"].get<int64_t>(),
                             w["state"].get<std::string>(), ago(w["next_in_s"]), w["msg"].get<std::string>());
    }
    if (!ops["top_errors"].empty()) {
        o += "Most common errors:\n";
        for (const auto& e : ops["top_errors"])
            o += fmt::format("  {:>6} x {:<9} {} (e.g. customer {})\n", e["count"].get<int64_t>(),
                             e["state"].get<std::string>(), e["msg"].get<std::string>(),
                             e["example_customer"].get<int64_t>());
    }
    if (s["runs"].empty()) {
        o += "Runs:         none yet\n";
    } else {
        o += "Recent runs:\n";
        o += fmt::format("  {:>6} {:<11} {:<10} {:<19} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8}  {}\n", "ID", "MODE",
                         "STATUS", "STARTED", "SECONDS", "ROWS", "ADDS", "REMOVES", "CALLS", "RETRIES", "FAILURES",
                         "PHASE / ERROR");
        for (const auto& r : s["runs"]) {
            std::string tail = r["status"] == "running" ? r["phase"].get<std::string>() : r["error"].get<std::string>();
            o += fmt::format("  {:>6} {:<11} {:<10} {:<19} {:>8.1f} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8}  {}\n",
                             r["id"].get<int64_t>(), r["mode"].get<std::string>(), r["status"].get<std::string>(),
                             r["started_at"].get<std::string>(), r["seconds"].get<double>(), r["rows"].get<int64_t>(),
                             r["adds"].get<int64_t>(), r["removes"].get<int64_t>(), r["calls"].get<int64_t>(),
                             r["retries"].get<int64_t>(), r["failures"].get<int64_t>(), tail);
        }
    }
    return o;
}

int64_t retry_failed_now(const config::Config& config) {
    store::Session st(config.database.dsn, config.database.schema);
    st.migrate();
    return st.journal.clear_op_waits();
}

}  // namespace cdpsync::daemon
