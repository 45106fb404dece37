// Run history and the op journal.
#include <unistd.h>

#include <pqxx/pqxx>

#include "store/outcomes.hpp"
#include "store/pq.hpp"
#include "store/cdp_memory.hpp"
#include "store/journal.hpp"
#include "store/runs.hpp"
#include "store/schema.hpp"

namespace cdpsync::store {
namespace {

const char* kRunColumns =
    "id, mode, phase, status, force, rows_read, rows_rejected, duplicates, adds, removes, ops_planned,"
    " ops_done, ops_failed, ops_permanent, calls, retries, failures, member_pages, groups_created,"
    " group_errors, drift_corrections, coalesce(error, ''), details::text,"
    " to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8";

RunRow read_run(const pqxx::row& r) {
    RunRow run;
    run.id = r[0].as<int64_t>();
    run.mode = parse_run_mode(r[1].as<std::string>());
    run.phase = parse_run_phase(r[2].as<std::string>());
    run.status = parse_run_status(r[3].as<std::string>());
    run.force = r[4].as<bool>();
    auto& c = run.counts;
    int i = 5;
    for (int64_t* f : {&c.rows_read, &c.rows_rejected, &c.duplicates, &c.adds, &c.removes, &c.ops_planned,
                       &c.ops_done, &c.ops_failed, &c.ops_permanent, &c.calls, &c.retries, &c.failures,
                       &c.member_pages, &c.groups_created, &c.group_errors, &c.drift_corrections})
        *f = r[i++].as<int64_t>();
    run.error = r[i++].as<std::string>();
    run.details = json::parse(r[i++].as<std::string>());
    run.started_at = r[i++].as<std::string>();
    run.seconds = r[i].as<double>();
    return run;
}

Op read_op(const pqxx::row& r) {
    Op op;
    op.id = r[0].as<int64_t>();
    op.run_id = r[1].as<int64_t>();
    op.customer_id = r[2].as<int64_t>();
    op.kind = parse_op_kind(r[3].as<std::string>());
    op.group_ids = parse_pg_array(r[4].as<std::string>());
    op.attempts = r[5].as<int>();
    return op;
}

}  // namespace

int64_t Runs::create_run(RunMode mode, bool force) {
    pqxx::work tx(pq(conn_));
    auto id = tx.exec_params1(sql("INSERT INTO @.run (mode, force, pid) VALUES ($1, $2, $3) RETURNING id"), to_string(mode),
                              force, static_cast<int>(::getpid()))[0]
                  .as<int64_t>();
    tx.commit();
    return id;
}

void Runs::set_phase(int64_t run_id, RunPhase phase) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("UPDATE @.run SET phase = $2 WHERE id = $1"), run_id, to_string(phase));
    tx.commit();
}

void Runs::save_counts(int64_t run_id, const RunCounts& c, const json& details) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("UPDATE @.run SET rows_read = $2, rows_rejected = $3, duplicates = $4, adds = $5,"
                       " removes = $6, ops_planned = $7, ops_done = $8, ops_failed = $9, ops_permanent = $10,"
                       " calls = $11, retries = $12, failures = $13, member_pages = $14, groups_created = $15,"
                       " group_errors = $16, details = $17::jsonb, drift_corrections = $18 WHERE id = $1"),
                   run_id, c.rows_read, c.rows_rejected, c.duplicates, c.adds, c.removes, c.ops_planned, c.ops_done,
                   c.ops_failed, c.ops_permanent, c.calls, c.retries, c.failures, c.member_pages, c.groups_created,
                   c.group_errors, details.dump(), c.drift_corrections);
    tx.commit();
}

void Runs::finish_run(int64_t run_id, RunStatus status, const std::string& error, const RunCounts& c,
                       const json& details) {
    save_counts(run_id, c, details);
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("UPDATE @.run SET status = $2, error = nullif($3, ''), finished_at = now(),"
                       " phase = CASE WHEN $2 = 'succeeded' THEN 'done' ELSE phase END WHERE id = $1"),
                   run_id, to_string(status), error);
    tx.commit();
}

void Runs::interrupt_run(int64_t run_id, const std::string& why, const RunCounts& c, const json& details) {
    save_counts(run_id, c, details);
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("UPDATE @.run SET status = 'interrupted', error = $2 WHERE id = $1"), run_id, why);
    tx.commit();
}

std::optional<RunRow> Runs::run(int64_t run_id) {
    pqxx::work tx(pq(conn_));
    auto r = tx.exec_params(sql(std::string("SELECT ") + kRunColumns + " FROM @.run WHERE id = $1"), run_id);
    tx.commit();
    if (r.empty()) return std::nullopt;
    return read_run(r[0]);
}

std::optional<RunRow> Runs::interrupted_run() {
    pqxx::work tx(pq(conn_));
    auto r = tx.exec(sql(std::string("SELECT ") + kRunColumns +
                         " FROM @.run WHERE status IN ('running', 'interrupted') ORDER BY id DESC LIMIT 1"));
    if (r.empty()) {
        tx.commit();
        return std::nullopt;
    }
    RunRow run = read_run(r[0]);
    tx.exec_params(sql("UPDATE @.run SET status = 'abandoned', finished_at = now(),"
                       " error = coalesce(error, 'interrupted; a later run took over')"
                       " WHERE status IN ('running', 'interrupted') AND id < $1"),
                   run.id);
    tx.exec_params(sql("UPDATE @.run SET status = 'running', error = NULL, pid = $2 WHERE id = $1"), run.id,
                   static_cast<int>(::getpid()));
    tx.commit();
    return run;
}

std::vector<RunRow> recent_runs(Connection& conn, const std::string& schema, int limit) {
    pqxx::work tx(pq(conn));
    std::vector<RunRow> out;
    const std::string q = with_schema(std::string("SELECT ") + kRunColumns + " FROM @.run ORDER BY id DESC LIMIT $1",
                                      pq(conn).quote_name(schema));
    for (const auto& r : tx.exec_params(q, limit)) out.push_back(read_run(r));
    tx.commit();
    return out;
}

std::vector<RunRow> Runs::recent_runs(int limit) { return store::recent_runs(conn_, schema_, limit); }

std::vector<Op> Journal::pending_ops(int64_t run_id, int64_t after_id, int limit) {
    pqxx::work tx(pq(conn_));
    auto out = detail::pending_ops(tx, quoted_schema_, run_id, after_id, limit);
    tx.commit();
    return out;
}

void Journal::record_op(const Op& op, const OpOutcome& o) {
    pqxx::work tx(pq(conn_));
    // A confirmation lost by a kill -9 of this process is still committed (the server has
    // it); only a crash of the server itself could lose the last few, and those are resent.
    tx.exec0("SET LOCAL synchronous_commit = off");
    detail::record_outcomes(tx, quoted_schema_, {{op, o}});
    tx.commit();
}

void Journal::record_ops(const std::vector<std::pair<Op, OpOutcome>>& outcomes) {
    if (outcomes.empty()) return;
    pqxx::work tx(pq(conn_));
    tx.exec0("SET LOCAL synchronous_commit = off");
    detail::record_outcomes(tx, quoted_schema_, outcomes);
    tx.commit();
}

namespace detail {

std::vector<Op> pending_ops(pqxx::work& tx, const std::string& quoted_schema, int64_t run_id, int64_t after_id,
                            int limit) {
    std::vector<Op> out;
    for (const auto& r : tx.exec_params(with_schema("SELECT id, run_id, customer_id, kind, group_ids::text, attempts"
                                                    " FROM @.op WHERE run_id = $1 AND state = 'pending' AND id > $2"
                                                    " ORDER BY id LIMIT $3",
                                                    quoted_schema),
                                        run_id, after_id, limit))
        out.push_back(read_op(r));
    return out;
}

namespace {

// Parallel arrays of (group, customer) pairs, as Postgres array literals for unnest().
struct Pairs {
    std::vector<int64_t> groups, customers;
    void add(const Op& op) {
        for (int64_t g : op.group_ids) {
            groups.push_back(g);
            customers.push_back(op.customer_id);
        }
    }
};

void record_failure(pqxx::work& tx, const std::string& q, const Op& op, const OpOutcome& o) {
    std::optional<int> status;
    if (o.http_status) status = o.http_status;
    std::optional<int64_t> wait_s;
    if (o.retry_in) wait_s = o.retry_in->count();
    tx.exec_params(with_schema("UPDATE @.op SET state = $2, attempts = attempts + 1, http_status = $3, cdp_code = $4,"
                               " msg = $5, next_attempt_at = now() + make_interval(secs => $6), updated_at = now()"
                               " WHERE id = $1",
                               q),
                   op.id, o.permanent ? "permanent" : "failed", status, o.cdp_code, o.msg, wait_s);
}

void record_set(pqxx::work& tx, const std::string& q, const Op& op) {
    const std::string ids = to_pg_array(op.group_ids);
    tx.exec_params(with_schema("DELETE FROM @.remote_member WHERE customer_id = $1 AND group_id <> ALL($2::bigint[])", q),
                   op.customer_id, ids);
    tx.exec_params(with_schema("INSERT INTO @.remote_member (group_id, customer_id)"
                               " SELECT unnest($2::bigint[]), $1 ON CONFLICT DO NOTHING",
                               q),
                   op.customer_id, ids);
}

}  // namespace

void record_outcomes(pqxx::work& tx, const std::string& q, const std::vector<Outcome>& batch) {
    // One run's plan holds each (group, customer) pair in one op at most, so the adds and
    // removes of a batch are disjoint and their order within it does not matter.
    std::vector<int64_t> done;
    Pairs added, removed;
    for (const auto& [op, o] : batch) {
        if (!o.ok) {
            record_failure(tx, q, op, o);
            continue;
        }
        done.push_back(op.id);
        if (op.kind == OpKind::add) added.add(op);
        else if (op.kind == OpKind::remove) removed.add(op);
        else record_set(tx, q, op);
    }
    if (!done.empty())
        tx.exec_params(with_schema("UPDATE @.op SET state = 'done', attempts = attempts + 1, http_status = NULL,"
                                   " cdp_code = NULL, msg = NULL, updated_at = now() WHERE id = ANY($1::bigint[])",
                                   q),
                       to_pg_array(done));
    if (!added.groups.empty())
        tx.exec_params(with_schema("INSERT INTO @.remote_member (group_id, customer_id)"
                                   " SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
                                   q),
                       to_pg_array(added.groups), to_pg_array(added.customers));
    if (!removed.groups.empty())
        tx.exec_params(with_schema("DELETE FROM @.remote_member r USING unnest($1::bigint[], $2::bigint[]) AS t(g, c)"
                                   " WHERE r.group_id = t.g AND r.customer_id = t.c",
                                   q),
                       to_pg_array(removed.groups), to_pg_array(removed.customers));
}

}  // namespace detail

OpTotals Journal::op_totals(int64_t run_id) {
    pqxx::work tx(pq(conn_));
    auto r = tx.exec_params1(sql("SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'done'),"
                                 " count(*) FILTER (WHERE state = 'failed'), count(*) FILTER (WHERE state = 'permanent')"
                                 " FROM @.op WHERE run_id = $1"),
                             run_id);
    tx.commit();
    return {r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<int64_t>(), r[3].as<int64_t>()};
}

namespace {

const char* kFailedColumns =
    "id, run_id, customer_id, kind, group_ids::text, attempts, state, coalesce(http_status, 0),"
    " cdp_code, coalesce(msg, ''),"
    " coalesce(to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')";

FailedOp read_failed(const pqxx::row& r) {
    FailedOp f;
    f.op = read_op(r);
    f.state = r[6].as<std::string>();
    f.http_status = r[7].as<int>();
    if (!r[8].is_null()) f.cdp_code = r[8].as<int>();
    f.msg = r[9].as<std::string>();
    f.next_attempt_at = r[10].as<std::string>();
    return f;
}

}  // namespace

std::vector<FailedOp> Journal::failed_ops(int64_t run_id, int limit) {
    pqxx::work tx(pq(conn_));
    std::vector<FailedOp> out;
    for (const auto& r : tx.exec_params(sql(std::string("SELECT ") + kFailedColumns +
                                            " FROM @.op WHERE run_id = $1 AND state IN ('failed', 'permanent')"
                                            " ORDER BY id LIMIT $2"),
                                        run_id, limit))
        out.push_back(read_failed(r));
    tx.commit();
    return out;
}

std::vector<FailedOp> Journal::waiting_ops(int limit) {
    pqxx::work tx(pq(conn_));
    std::vector<FailedOp> out;
    for (const auto& r : tx.exec_params(
             sql(std::string("SELECT ") + kFailedColumns + " FROM @.op WHERE state IN ('failed', 'permanent')"
                 " AND run_id = (SELECT max(run_id) FROM @.op WHERE state IN ('failed', 'permanent'))"
                 " ORDER BY next_attempt_at NULLS FIRST, id LIMIT $1"),
             limit))
        out.push_back(read_failed(r));
    tx.commit();
    return out;
}

int64_t Journal::clear_op_waits() {
    pqxx::work tx(pq(conn_));
    auto r = tx.exec(sql("UPDATE @.op SET next_attempt_at = NULL, attempts = 0, updated_at = now()"
                         " WHERE state IN ('failed', 'permanent')"));
    tx.commit();
    return static_cast<int64_t>(r.affected_rows());
}

std::vector<Op> Journal::split_op(const Op& op, const std::vector<std::vector<int64_t>>& parts) {
    pqxx::work tx(pq(conn_));
    std::vector<Op> out;
    for (const auto& ids : parts) {
        Op part = op;
        part.group_ids = ids;
        part.attempts = 0;
        part.id = tx.exec_params1(sql("INSERT INTO @.op (run_id, customer_id, kind, group_ids)"
                                      " VALUES ($1, $2, $3, $4::bigint[]) RETURNING id"),
                                  op.run_id, op.customer_id, to_string(op.kind), to_pg_array(ids))[0]
                      .as<int64_t>();
        out.push_back(std::move(part));
    }
    tx.exec_params(sql("UPDATE @.op SET state = 'superseded', updated_at = now() WHERE id = $1"), op.id);
    tx.exec_params(sql("UPDATE @.run SET ops_planned = ops_planned + $2 WHERE id = $1"), op.run_id,
                   static_cast<int64_t>(parts.size()) - 1);
    tx.commit();
    return out;
}

const char* to_string(Breaker b) {
    switch (b) {
    case Breaker::closed: return "closed";
    case Breaker::open: return "open";
    case Breaker::half_open: return "half_open";
    }
    return "closed";
}

CdpState CdpMemory::cdp_state() {
    pqxx::work tx(pq(conn_));
    auto r = tx.exec1(sql("SELECT breaker, breaker_reason, max_groups_per_call FROM @.cdp_state WHERE id = 1"));
    tx.commit();
    CdpState s;
    const auto b = r[0].as<std::string>();
    s.breaker = b == "open" ? Breaker::open : b == "half_open" ? Breaker::half_open : Breaker::closed;
    s.breaker_reason = r[1].as<std::string>();
    if (!r[2].is_null()) s.max_groups_per_call = r[2].as<int>();
    return s;
}

bool CdpMemory::set_breaker(Breaker b, const std::string& reason) {
    pqxx::work tx(pq(conn_));
    auto r = tx.exec_params(sql("UPDATE @.cdp_state SET breaker = $1, breaker_reason = $2, breaker_since = now()"
                       " WHERE id = 1 AND breaker <> $1"),
                   to_string(b), reason);
    tx.commit();
    return r.affected_rows() > 0;
}

void CdpMemory::learn_group_cap(int cap) {
    if (cap < 1) return;
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("UPDATE @.cdp_state SET max_groups_per_call = $1"
                       " WHERE id = 1 AND (max_groups_per_call IS NULL OR max_groups_per_call > $1)"),
                   cap);
    tx.commit();
}

}  // namespace cdpsync::store
