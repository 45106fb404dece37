#include "store/status.hpp"

#include <pqxx/pqxx>

#include "store/pq.hpp"
#include "store/schema.hpp"

namespace cdpsync::store {
namespace {

std::string quote_schema(const std::string& schema) {
    if (!is_plain_identifier(schema)) throw std::invalid_argument("database.schema is not a plain identifier");
    return "\"" + schema + "\"";
}

bool table_exists(pqxx::transaction_base& tx, const std::string& schema, const std::string& table) {
    return tx.exec_params1("SELECT to_regclass($1) IS NOT NULL", schema + "." + table)[0].as<bool>();
}

std::optional<double> opt_double(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return f.as<double>();
}

std::optional<int> opt_int(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return f.as<int>();
}

std::optional<double> since_success(pqxx::transaction_base& tx, const std::string& q, bool full_only) {
    return opt_double(tx.exec1(with_schema("SELECT extract(epoch FROM now() - max(finished_at))::float8 FROM @.run"
                                           " WHERE status = 'succeeded'" +
                                               std::string(full_only ? " AND mode = 'full'" : ""),
                                           q))[0]);
}

void read_ops(pqxx::transaction_base& tx, const std::string& q, StatusFigures& out) {
    for (const auto& r : tx.exec(with_schema("SELECT state, count(*) FROM @.op"
                                             " WHERE state IN ('pending', 'failed', 'permanent') GROUP BY state",
                                             q)))
        out.open_ops[r[0].as<std::string>()] = r[1].as<int64_t>();
    for (const auto& r : tx.exec(with_schema("SELECT coalesce(nullif(msg, ''), '(no message)'), http_status, cdp_code,"
                                             " count(*), min(customer_id), max(state) FROM @.op"
                                             " WHERE state IN ('failed', 'permanent')"
                                             " GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5",
                                             q)))
        out.top_errors.push_back({r[0].as<std::string>(), r[5].as<std::string>(), opt_int(r[1]), opt_int(r[2]),
                                  r[3].as<int64_t>(), r[4].as<int64_t>()});
    for (const auto& r : tx.exec(with_schema("SELECT state, coalesce(nullif(msg, ''), '(no message)'), count(*),"
                                             " extract(epoch FROM min(next_attempt_at) - now())::float8 FROM @.op"
                                             " WHERE state IN ('failed', 'permanent') AND next_attempt_at > now()"
                                             " GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5",
                                             q)))
        out.waiting.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<int64_t>(), r[3].as<double>()});
}

}  // namespace

std::optional<RunProgress> running_run(Connection& conn, const std::string& schema) {
    const std::string q = quote_schema(schema);
    pqxx::nontransaction tx(pq(conn));
    if (!table_exists(tx, schema, "op")) return std::nullopt;
    auto r = tx.exec(with_schema(
        "SELECT r.id, r.mode, r.phase, extract(epoch FROM now() - r.started_at)::float8,"
        " (SELECT count(*) FROM @.op o WHERE o.run_id = r.id AND o.state IN ('done', 'failed', 'permanent')),"
        " (SELECT count(*) FROM @.op o WHERE o.run_id = r.id AND o.state <> 'superseded'),"
        " s.pages, s.groups_done, s.groups_total"
        " FROM @.run r, LATERAL (SELECT coalesce(sum(c.next_page - 1), 0)::bigint AS pages,"
        "   count(*) FILTER (WHERE c.done) AS groups_done, count(*) AS groups_total"
        "   FROM @.snapshot_cursor c WHERE c.snapshot_id = r.id) s"
        " WHERE r.status = 'running' ORDER BY r.id DESC LIMIT 1",
        q));
    if (r.empty()) return std::nullopt;
    RunProgress p{r[0][0].as<int64_t>(), r[0][1].as<std::string>(), r[0][2].as<std::string>(),
                  r[0][3].as<double>(), r[0][4].as<int64_t>(), r[0][5].as<int64_t>()};
    p.pages = r[0][6].as<int64_t>();
    p.groups_done = r[0][7].as<int64_t>();
    p.groups_total = r[0][8].as<int64_t>();
    return p;
}

std::optional<RunProgress> snapshot_progress(Connection& conn, const std::string& schema, int64_t snapshot_id) {
    const std::string q = quote_schema(schema);
    pqxx::nontransaction tx(pq(conn));
    if (!table_exists(tx, schema, "snapshot_cursor")) return std::nullopt;
    auto r = tx.exec_params1(with_schema("SELECT coalesce(sum(next_page - 1), 0)::bigint, count(*) FILTER (WHERE done),"
                                        " count(*) FROM @.snapshot_cursor WHERE snapshot_id = $1",
                                        q),
                             snapshot_id);
    if (r[2].as<int64_t>() == 0) return std::nullopt;
    RunProgress p;
    p.mode = "plan";
    p.phase = "snapshot";
    p.pages = r[0].as<int64_t>();
    p.groups_done = r[1].as<int64_t>();
    p.groups_total = r[2].as<int64_t>();
    return p;
}

std::optional<double> seconds_since_success(Connection& conn, const std::string& schema, bool full_only) {
    const std::string q = quote_schema(schema);
    pqxx::nontransaction tx(pq(conn));
    if (!table_exists(tx, schema, "run")) return std::nullopt;
    return since_success(tx, q, full_only);
}

StatusFigures read_status(Connection& conn, const std::string& schema, int runs) {
    const std::string q = quote_schema(schema);
    StatusFigures out;
    out.leader = current_leader(conn, schema);
    out.schema_version = schema_version(conn, schema);
    if (out.schema_version > 0 && out.schema_version < kSchemaVersion) return out;
    {
        pqxx::nontransaction tx(pq(conn));
        out.has_runs = table_exists(tx, schema, "run");
    }
    if (out.has_runs) {
        out.runs = recent_runs(conn, schema, runs);
        out.last_success_s = seconds_since_success(conn, schema, false);
        out.last_full_success_s = seconds_since_success(conn, schema, true);
    }
    pqxx::work tx(pq(conn));
    out.has_ops = table_exists(tx, schema, "op");
    if (out.has_ops) read_ops(tx, q, out);
    if (table_exists(tx, schema, "cdp_state")) {
        auto b = tx.exec1(with_schema("SELECT breaker, breaker_reason, to_char(breaker_since, 'YYYY-MM-DD HH24:MI:SS'),"
                                      " max_groups_per_call FROM @.cdp_state",
                                      q));
        out.breaker = StatusFigures::BreakerRow{b[0].as<std::string>(), b[1].as<std::string>(), b[2].as<std::string>(),
                                                opt_int(b[3])};
    }
    if (table_exists(tx, schema, "resync_request")) {
        auto r = tx.exec1(with_schema("SELECT count(*) FILTER (WHERE started_at IS NULL),"
                                      " count(*) FILTER (WHERE started_at IS NOT NULL AND finished_at IS NULL)"
                                      " FROM @.resync_request",
                                      q));
        out.resync_queued = r[0].as<int64_t>();
        out.resync_running = r[1].as<int64_t>();
    }
    tx.commit();
    return out;
}

ServerFacts server_facts(Connection& conn, const std::string& schema) {
    pqxx::nontransaction tx(pq(conn));
    auto v = tx.exec1("SELECT current_setting('server_version'), current_user, current_database()");
    ServerFacts f{v[0].as<std::string>(), v[1].as<std::string>(), v[2].as<std::string>()};
    auto s = tx.exec_params1(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),"
        " CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)"
        " THEN has_schema_privilege($1, 'CREATE') ELSE has_database_privilege(current_database(), 'CREATE') END",
        schema);
    f.schema_exists = s[0].as<bool>();
    f.can_create = s[1].as<bool>();
    return f;
}

}  // namespace cdpsync::store
