// The planner: desired vs mirror as set operations in PostgreSQL, never in this process's
// memory, so 1M memberships cost the server one hash full join and us nothing.
// `plan` and the run share every statement here; only journal_plan() writes.
#include <pqxx/pqxx>

#include "store/pq.hpp"
#include "store/planner.hpp"
#include "store/schema.hpp"

namespace cdpsync::store {
namespace {

// The managed group ids, and those held (no removal planned), as array literals: the mirror
// is filtered by a hashed `= ANY` of constants instead of a join with cdp_managed (0.25 s
// less server CPU at 1M rows).
struct ManagedIds {
    std::string all, held;
};

ManagedIds managed_ids(pqxx::work& tx) {
    const auto r = tx.exec1("SELECT coalesce(array_agg(group_id), '{}')::text,"
                            " coalesce(array_agg(group_id) FILTER (WHERE hold_removals), '{}')::text"
                            " FROM pg_temp.cdp_managed");
    return {r[0].as<std::string>(), r[1].as<std::string>()};
}

// Desired vs mirror in one pass: a hash full join of the wanted pairs and the mirror of the
// managed groups keeps only the pairs on one side (two anti-joins did the join twice).
// Mirror-only pairs of a held group, or in additive mode, are 'kept'. The join streams to a
// table and spills to disk past work_mem, whatever the size of the change.
void diff_against_mirror(pqxx::work& tx, const Repository& store, const PlanOptions& o, const ManagedIds& ids) {
    tx.exec_params(store.sql(
        "CREATE TEMP TABLE cdp_plan_diff AS"
        " SELECT coalesce(w.group_id, r.group_id) AS group_id, coalesce(w.customer_id, r.customer_id) AS customer_id,"
        "        CASE WHEN r.customer_id IS NULL THEN 'add' WHEN NOT $3 AND NOT r.group_id = ANY($2::bigint[])"
        "             THEN 'remove' ELSE 'kept' END AS kind"
        " FROM pg_temp.cdp_wanted w"
        " FULL JOIN (SELECT r.group_id, r.customer_id FROM @.remote_member r WHERE r.group_id = ANY($1::bigint[])) r"
        "   ON r.group_id = w.group_id AND r.customer_id = w.customer_id"
        " WHERE w.customer_id IS NULL OR r.customer_id IS NULL"),
        ids.all, ids.held, o.additive);
    tx.exec0("CREATE TEMP TABLE cdp_plan_add AS SELECT customer_id, group_id FROM pg_temp.cdp_plan_diff WHERE kind = 'add'");
    tx.exec0("CREATE TEMP TABLE cdp_plan_remove AS SELECT customer_id, group_id FROM pg_temp.cdp_plan_diff"
             " WHERE kind = 'remove'");
    tx.exec0("ANALYZE pg_temp.cdp_plan_add");
    tx.exec0("ANALYZE pg_temp.cdp_plan_remove");
}

// Per managed group: members in the mirror (one scan), and from them and the diff the wanted
// count: mirror - mirror-only pairs + adds.
void count_groups(pqxx::work& tx, const Repository& store, const ManagedIds& ids) {
    tx.exec_params(store.sql(
        "CREATE TEMP TABLE cdp_plan_group AS"
        " WITH mirror AS (SELECT r.group_id, count(*) AS n FROM @.remote_member r"
        "                 WHERE r.group_id = ANY($1::bigint[]) GROUP BY 1),"
        " diff AS (SELECT group_id, count(*) FILTER (WHERE kind = 'add') AS adds,"
        "                 count(*) FILTER (WHERE kind = 'remove') AS removes,"
        "                 count(*) FILTER (WHERE kind <> 'add') AS mirror_only"
        "          FROM pg_temp.cdp_plan_diff GROUP BY 1)"
        " SELECT m.group_id, coalesce(mi.n, 0) AS mirror,"
        "        coalesce(mi.n, 0) - coalesce(d.mirror_only, 0) + coalesce(d.adds, 0) AS wanted,"
        "        coalesce(d.adds, 0) AS adds, coalesce(d.removes, 0) AS removes"
        " FROM pg_temp.cdp_managed m LEFT JOIN mirror mi ON mi.group_id = m.group_id"
        " LEFT JOIN diff d ON d.group_id = m.group_id"),
        ids.all);
}

// One call per customer and kind, in chunks of at most max_groups_per_call groups.
void plan_add_remove_ops(pqxx::work& tx, const PlanOptions& o) {
    for (const char* kind : {"add", "remove"}) {
        const std::string table = std::string("pg_temp.cdp_plan_") + kind;
        tx.exec_params("INSERT INTO pg_temp.cdp_plan_op SELECT customer_id, $1, array_agg(group_id ORDER BY group_id)"
                       " FROM (SELECT customer_id, group_id, CASE WHEN $2 > 0 THEN (row_number() OVER"
                       "   (PARTITION BY customer_id ORDER BY group_id) - 1) / $2 ELSE 0 END AS chunk"
                       "   FROM " + table + ") s GROUP BY customer_id, chunk",
                       kind, o.max_groups_per_call);
    }
}

// customerUpdateGroups replaces the customer's whole static list: the wanted groups, plus
// mirrored groups we no longer manage (left alone), plus in additive mode every mirrored
// group. An empty list is sent as a customerDeleteGroups instead.
void plan_set_ops(pqxx::work& tx, const Repository& store, const PlanOptions& o) {
    tx.exec0(store.sql(
        "INSERT INTO pg_temp.cdp_plan_op"
        " WITH changed AS (SELECT customer_id FROM pg_temp.cdp_plan_add"
        "                  UNION SELECT customer_id FROM pg_temp.cdp_plan_remove),"
        " target AS ("
        "   SELECT w.customer_id, w.group_id FROM pg_temp.cdp_wanted w JOIN changed USING (customer_id)"
        "   UNION SELECT r.customer_id, r.group_id FROM @.remote_member r JOIN changed USING (customer_id)"
        "   WHERE " + std::string(o.additive ? "true" : "false") +
        "      OR NOT EXISTS (SELECT 1 FROM pg_temp.cdp_managed m"
        "                     WHERE m.group_id = r.group_id AND NOT m.hold_removals))"
        " SELECT c.customer_id,"
        "        CASE WHEN t.ids IS NULL THEN 'remove' ELSE 'set' END,"
        "        coalesce(t.ids, (SELECT array_agg(p.group_id ORDER BY p.group_id) FROM pg_temp.cdp_plan_remove p"
        "                         WHERE p.customer_id = c.customer_id))"
        " FROM changed c LEFT JOIN (SELECT customer_id, array_agg(group_id ORDER BY group_id) AS ids"
        "                           FROM target GROUP BY customer_id) t USING (customer_id)"));
}

void count_plan(pqxx::work& tx, PlanSummary& s) {
    auto t = tx.exec1("SELECT (SELECT count(*) FROM pg_temp.cdp_plan_add), (SELECT count(*) FROM pg_temp.cdp_plan_remove),"
                      " (SELECT count(DISTINCT customer_id) FROM pg_temp.cdp_plan_op),"
                      " count(*) FILTER (WHERE kind = 'add'), count(*) FILTER (WHERE kind = 'remove'),"
                      " count(*) FILTER (WHERE kind = 'set') FROM pg_temp.cdp_plan_op");
    s.adds = t[0].as<int64_t>();
    s.removes = t[1].as<int64_t>();
    s.customers = t[2].as<int64_t>();
    s.add_calls = t[3].as<int64_t>();
    s.remove_calls = t[4].as<int64_t>();
    s.set_calls = t[5].as<int64_t>();
}

// Per managed group: its counts and the first `samples` customer ids of each change.
void plan_groups(pqxx::work& tx, const PlanOptions& o, PlanSummary& s) {
    auto rows = tx.exec_params(
        "WITH sample AS (SELECT group_id, kind, array_agg(customer_id ORDER BY customer_id)::text AS ids"
        "   FROM (SELECT group_id, kind, customer_id,"
        "                row_number() OVER (PARTITION BY group_id, kind ORDER BY customer_id) AS n"
        "         FROM pg_temp.cdp_plan_diff WHERE kind <> 'kept') x WHERE n <= $1 GROUP BY 1, 2)"
        " SELECT m.name, m.group_id, g.wanted, g.mirror, g.adds, g.removes, a.ids, r.ids"
        " FROM pg_temp.cdp_managed m JOIN pg_temp.cdp_plan_group g ON g.group_id = m.group_id"
        " LEFT JOIN sample a ON a.group_id = m.group_id AND a.kind = 'add'"
        " LEFT JOIN sample r ON r.group_id = m.group_id AND r.kind = 'remove' ORDER BY m.name",
        o.samples);
    for (const auto& r : rows) {
        GroupPlan g;
        g.name = r[0].as<std::string>();
        g.group_id = r[1].as<int64_t>();
        g.desired = r[2].as<int64_t>();
        g.mirror = r[3].as<int64_t>();
        g.adds = r[4].as<int64_t>();
        g.removes = r[5].as<int64_t>();
        if (!r[6].is_null()) g.sample_adds = parse_pg_array(r[6].as<std::string>());
        if (!r[7].is_null()) g.sample_removes = parse_pg_array(r[7].as<std::string>());
        s.groups.push_back(std::move(g));
    }
}

}  // namespace

// The managed groups, and the view of the desired pairs by group id (cdp_desired joined by
// name): a 1M-row table copied here cost more than joining again inside the plan.
void Planner::set_managed(const std::vector<ManagedGroup>& groups) {
    pqxx::work tx(pq(conn_));
    tx.exec0("DROP VIEW IF EXISTS pg_temp.cdp_wanted");
    tx.exec0("DROP TABLE IF EXISTS pg_temp.cdp_managed");
    tx.exec0("CREATE TEMP TABLE cdp_managed (group_id bigint PRIMARY KEY, name text NOT NULL UNIQUE,"
             " hold_removals boolean NOT NULL DEFAULT false)");
    for (const auto& g : groups)
        tx.exec_params("INSERT INTO pg_temp.cdp_managed VALUES ($1, $2, $3)", g.group_id, g.name, g.hold_removals);
    tx.exec0("ANALYZE pg_temp.cdp_managed");
    tx.exec0("CREATE TEMP VIEW cdp_wanted AS SELECT m.group_id, d.customer_id"
             " FROM pg_temp.cdp_desired d JOIN pg_temp.cdp_managed m ON m.name = d.group_name");
    tx.commit();
}

PlanSummary Planner::compute_plan(const PlanOptions& o) {
    pqxx::work tx(pq(conn_));
    tx.exec0("DROP TABLE IF EXISTS pg_temp.cdp_plan_diff, pg_temp.cdp_plan_group, pg_temp.cdp_plan_add,"
             " pg_temp.cdp_plan_remove, pg_temp.cdp_plan_op");
    const ManagedIds ids = managed_ids(tx);
    diff_against_mirror(tx, *this, o, ids);
    count_groups(tx, *this, ids);
    tx.exec0("CREATE TEMP TABLE cdp_plan_op (customer_id bigint NOT NULL, kind text NOT NULL, group_ids bigint[] NOT NULL)");
    if (o.owns_all) plan_set_ops(tx, *this, o);
    else plan_add_remove_ops(tx, o);
    PlanSummary s;
    count_plan(tx, s);
    plan_groups(tx, o, s);
    tx.commit();
    return s;
}

std::vector<std::pair<int64_t, std::string>> Planner::sample_removals(int limit) {
    pqxx::work tx(pq(conn_));
    std::vector<std::pair<int64_t, std::string>> out;
    for (const auto& r : tx.exec_params("SELECT p.customer_id, m.name FROM pg_temp.cdp_plan_remove p"
                                        " JOIN pg_temp.cdp_managed m USING (group_id)"
                                        " ORDER BY m.name, p.customer_id LIMIT $1",
                                        limit))
        out.emplace_back(r[0].as<int64_t>(), r[1].as<std::string>());
    tx.commit();
    return out;
}

void Planner::journal_plan(int64_t run_id, const RunCounts& c, const CarryOver& carry) {
    pqxx::work tx(pq(conn_));
    // An op identical to one that failed before (looked up before the older ops are
    // superseded) keeps its attempts, for the backoff, and waits as it did while its
    // next_attempt_at is ahead; a full run ($2) carries nothing.
    tx.exec_params(sql(
        "INSERT INTO @.op (run_id, customer_id, kind, group_ids, state, attempts, http_status, cdp_code, msg,"
        "                  next_attempt_at)"
        " SELECT $1, n.customer_id, n.kind, n.group_ids,"
        "        CASE WHEN p.next_attempt_at > now() THEN p.state ELSE 'pending' END,"
        "        coalesce(p.attempts, 0), p.http_status, p.cdp_code, p.msg,"
        "        CASE WHEN p.next_attempt_at > now() THEN p.next_attempt_at END"
        " FROM pg_temp.cdp_plan_op n"
        " LEFT JOIN LATERAL (SELECT o.state, o.attempts, o.http_status, o.cdp_code, o.msg, o.next_attempt_at"
        "   FROM @.op o WHERE NOT $2 AND o.state IN ('failed', 'permanent') AND o.run_id <> $1"
        "     AND o.customer_id = n.customer_id AND o.kind = n.kind AND o.group_ids = n.group_ids"
        "   ORDER BY o.id DESC LIMIT 1) p ON true"
        " ORDER BY n.customer_id, n.kind"),
        run_id, carry.reset);
    tx.exec_params(sql("UPDATE @.op SET state = 'superseded', updated_at = now()"
                       " WHERE run_id <> $1 AND state IN ('pending', 'failed', 'permanent')"),
                   run_id);
    tx.exec_params(sql("UPDATE @.run SET phase = 'apply', adds = $2, removes = $3,"
                       " ops_planned = (SELECT count(*) FROM @.op WHERE run_id = $1) WHERE id = $1"),
                   run_id, c.adds, c.removes);
    tx.commit();
}

}  // namespace cdpsync::store
