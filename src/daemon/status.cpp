#include "daemon/status.hpp"

#include <cmath>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "daemon/control.hpp"
#include "store/store.hpp"

namespace cdpsync::daemon {
namespace {

using json = nlohmann::json;

json opt(const pqxx::field& f) {
    if (f.is_null()) return nullptr;
    return f.as<double>();
}

// Failed/permanent ops whose next attempt is ahead: how many, why, when the next one is due.
json waiting_ops(pqxx::work& tx, const std::string& q, const std::string& schema) {
    json out = json::array();
    if (!tx.exec1("SELECT count(*) FROM information_schema.columns WHERE table_schema = " + tx.quote(schema) +
                  " AND table_name = 'op' AND column_name = 'next_attempt_at'")[0].as<bool>())
        return out;
    for (const auto& r : tx.exec("SELECT state, coalesce(nullif(msg, ''), '(no message)'), count(*),"
                                 " extract(epoch FROM min(next_attempt_at) - now())::float8 FROM " + q +
                                 ".op WHERE state IN ('failed', 'permanent') AND next_attempt_at > now()"
                                 " GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"))
        out.push_back({{"state", r[0].as<std::string>()}, {"msg", r[1].as<std::string>()},
                       {"count", r[2].as<int64_t>()}, {"next_in_s", r[3].as<double>()}});
    return out;
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
    if (!store::is_plain_identifier(schema)) throw std::invalid_argument("database.schema is not a plain identifier");
    const std::string q = "\"" + schema + "\"";
    auto conn = connect(cfg.database.dsn, "cdp-sync status");
    json out;
    out["schema"] = schema;
    out["database"] = store::redact_dsn(cfg.database.dsn);

    if (auto l = current_leader(*conn, schema)) {
        json j{{"backend_pid", l->backend_pid}, {"host", l->host}, {"phase", l->phase}};
        j["pid"] = l->pid ? json(*l->pid) : json(nullptr);
        j["phase_seconds"] = l->phase_seconds ? json(*l->phase_seconds) : json(nullptr);
        j["heartbeat_age_s"] = l->heartbeat_age_s ? json(*l->heartbeat_age_s) : json(nullptr);
        j["next_full_in_s"] = l->next_full_in_s ? json(*l->next_full_in_s) : json(nullptr);
        j["leader_for_s"] = l->leader_for_s ? json(*l->leader_for_s) : json(nullptr);
        out["leader"] = j;
    } else {
        out["leader"] = nullptr;
    }

    pqxx::work tx(*conn);
    auto exists = [&](const std::string& table) {
        return tx.exec_params1("SELECT to_regclass($1) IS NOT NULL", schema + "." + table)[0].as<bool>();
    };
    out["runs"] = json::array();
    out["last_success_s"] = nullptr;
    out["ops"] = {{"pending", 0}, {"failed", 0}, {"permanent", 0}, {"top_errors", json::array()}};
    out["resync"] = {{"queued", 0}, {"running", 0}};
    if (exists("run")) {
        for (const auto& r : tx.exec_params(
                 "SELECT id, mode, phase, status, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'),"
                 " extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8,"
                 " rows_read, adds, removes, ops_planned, ops_done, ops_failed, ops_permanent, calls, retries,"
                 " failures, coalesce(error, '') FROM " + q + ".run ORDER BY id DESC LIMIT $1",
                 runs)) {
            out["runs"].push_back({{"id", r[0].as<int64_t>()}, {"mode", r[1].as<std::string>()},
                                   {"phase", r[2].as<std::string>()}, {"status", r[3].as<std::string>()},
                                   {"started_at", r[4].as<std::string>()}, {"seconds", r[5].as<double>()},
                                   {"rows", r[6].as<int64_t>()}, {"adds", r[7].as<int64_t>()},
                                   {"removes", r[8].as<int64_t>()}, {"ops_planned", r[9].as<int64_t>()},
                                   {"ops_done", r[10].as<int64_t>()}, {"ops_failed", r[11].as<int64_t>()},
                                   {"ops_permanent", r[12].as<int64_t>()}, {"calls", r[13].as<int64_t>()},
                                   {"retries", r[14].as<int64_t>()}, {"failures", r[15].as<int64_t>()},
                                   {"error", r[16].as<std::string>()}});
        }
        auto s = tx.exec1("SELECT extract(epoch FROM now() - max(finished_at))::float8 FROM " + q +
                          ".run WHERE status = 'succeeded'");
        out["last_success_s"] = opt(s[0]);
        auto f = tx.exec1("SELECT extract(epoch FROM now() - max(finished_at))::float8 FROM " + q +
                          ".run WHERE status = 'succeeded' AND mode = 'full'");
        out["last_full_success_s"] = opt(f[0]);
    }
    if (exists("op")) {
        for (const auto& r : tx.exec("SELECT state, count(*) FROM " + q +
                                     ".op WHERE state IN ('pending', 'failed', 'permanent') GROUP BY state"))
            out["ops"][r[0].as<std::string>()] = r[1].as<int64_t>();
        for (const auto& r : tx.exec("SELECT coalesce(nullif(msg, ''), '(no message)'), http_status, cdp_code,"
                                     " count(*), min(customer_id), max(state) FROM " + q +
                                     ".op WHERE state IN ('failed', 'permanent')"
                                     " GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5")) {
            json e{{"msg", r[0].as<std::string>()}, {"count", r[3].as<int64_t>()},
                   {"example_customer", r[4].as<int64_t>()}, {"state", r[5].as<std::string>()}};
            e["http_status"] = r[1].is_null() ? json(nullptr) : json(r[1].as<int>());
            e["cdp_code"] = r[2].is_null() ? json(nullptr) : json(r[2].as<int>());
            out["ops"]["top_errors"].push_back(e);
        }
        out["ops"]["waiting"] = waiting_ops(tx, q, schema);
    }
    if (exists("cdp_state")) {
        auto b = tx.exec1("SELECT breaker, breaker_reason, to_char(breaker_since, 'YYYY-MM-DD HH24:MI:SS'),"
                          " max_groups_per_call FROM " + q + ".cdp_state");
        out["breaker"] = {{"state", b[0].as<std::string>()}, {"reason", b[1].as<std::string>()},
                          {"since", b[2].as<std::string>()}};
        out["max_groups_per_call_learned"] = b[3].is_null() ? json(nullptr) : json(b[3].as<int>());
    }
    if (exists("resync_request")) {
        auto r = tx.exec1("SELECT count(*) FILTER (WHERE started_at IS NULL),"
                          " count(*) FILTER (WHERE started_at IS NOT NULL AND finished_at IS NULL) FROM " + q +
                          ".resync_request");
        out["resync"] = {{"queued", r[0].as<int64_t>()}, {"running", r[1].as<int64_t>()}};
    }
    tx.commit();
    return out;
}

std::string status_text(const json& s) {
    std::string o;
    o += fmt::format("Schema:       {} on {}\n", s["schema"].get<std::string>(), s["database"].get<std::string>());
    const auto& l = s["leader"];
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
    store::Store st(config.database.dsn, config.database.schema);
    st.migrate();
    return st.clear_op_waits();
}

}  // namespace cdpsync::daemon
