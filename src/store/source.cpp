// The source: the user's desired-memberships and desired-groups queries, run once each
// straight into session temp tables (never through this process's memory), every row
// checked in SQL. Invalid rows are kept with their reason for the report.
#include <functional>

#include <pqxx/pqxx>

#include "config/text.hpp"
#include "store/pq.hpp"
#include "store/schema.hpp"
#include "store/source.hpp"

namespace cdpsync::store {
namespace {

// The user's query as a subquery: no trailing semicolons or whitespace.
std::string subquery(std::string q) {
    while (!q.empty() && (q.back() == ';' || std::isspace(static_cast<unsigned char>(q.back())))) q.pop_back();
    return "(" + q + "\n)";
}

// The reason a group name (SQL expression `n`) is unusable, NULL when fine; the same rule as
// group_name_problem().
std::string name_reason_sql(const std::string& n) {
    return "CASE WHEN " + n + " IS NULL THEN 'null group name'"
           " WHEN btrim(" + n + ", ' ') = '' THEN 'empty group name'"
           " WHEN " + n + " ~ '[\\x01-\\x1f\\x7f]' THEN 'group name has control characters'"
           " WHEN " + n + " <> btrim(" + n + ", ' ') THEN 'group name has leading or trailing spaces'"
           " WHEN char_length(" + n + ") > " + std::to_string(kMaxGroupNameChars) +
           " THEN 'group name longer than " + std::to_string(kMaxGroupNameChars) + " characters'"
           " END";
}

// The desired memberships as the run reads them: (customer_id, group_name, reason,
// raw_customer), every row checked. The query needs at least two columns.
std::string membership_select(const std::string& query) {
    return "SELECT CASE WHEN reason IS NULL THEN cid::bigint END, name, reason,"
           "        CASE WHEN reason IS NOT NULL THEN left(cid, 40) END"
           " FROM (SELECT c.cid, c.name, CASE"
           "   WHEN c.cid IS NULL THEN 'null customer id'"
           "   WHEN c.cid !~ '^\\s*[+-]?[0-9]{1,30}\\s*$' THEN 'customer id is not an integer'"
           "   WHEN c.cid::numeric <= 0 THEN 'non-positive customer id'"
           "   WHEN c.cid::numeric > 9223372036854775807 THEN 'customer id out of range'"
           "   ELSE " + name_reason_sql("c.name") + " END AS reason"
           "  FROM (SELECT q.customer_id::text AS cid, q.group_name::text AS name"
           "        FROM " + subquery(query) + " AS q (customer_id, group_name)) c) v";
}

// The desired groups as the run reads them: (name, description, folder, reason). The query
// has one to three columns that matter (name, description, folder); more are ignored.
// Throws SourceError when it has none, pqxx::sql_error when it does not run.
std::string group_select(pqxx::transaction_base& tx, const std::string& query) {
    const auto cols = tx.exec("SELECT * FROM " + subquery(query) + " AS q LIMIT 0").columns();
    if (cols < 1) throw SourceError("database.desired_groups returns no columns");
    std::string alias = "name";
    std::string desc = "NULL::text", folder = "NULL::text";
    if (cols >= 2) { alias += ", description"; desc = "q.description::text"; }
    if (cols >= 3) { alias += ", folder"; folder = "nullif(q.folder::text, '')"; }
    for (pqxx::row::size_type i = 3; i < cols; ++i) alias += ", extra" + std::to_string(i);
    return "SELECT q.name::text, " + desc + ", " + folder + ", " + name_reason_sql("q.name::text") + " FROM " +
           subquery(query) + " AS q (" + alias + ")";
}

// Runs `select` with no rows in a transaction rolled back; the problem, or "" when it runs.
std::string try_select(pqxx::connection& conn, const std::function<std::string(pqxx::work&)>& select) {
    pqxx::work tx(conn);
    try {
        tx.exec0("SET LOCAL statement_timeout = '30s'");
        tx.exec("SELECT * FROM (" + select(tx) + ") AS checked LIMIT 0");
        return "";
    } catch (const pqxx::sql_error& e) {
        return text::one_line(e.what());
    } catch (const SourceError& e) {
        return e.what();
    }
}

}  // namespace

std::vector<QueryCheck> check_source_queries(Connection& connection, const config::DatabaseConfig& db) {
    auto& conn = pq(connection);
    std::vector<QueryCheck> out;
    out.push_back({"database.desired_memberships",
                   try_select(conn, [&](pqxx::work&) { return membership_select(db.desired_memberships); })});
    if (!db.desired_groups.empty())
        out.push_back({"database.desired_groups",
                       try_select(conn, [&](pqxx::work& tx) { return group_select(tx, db.desired_groups); })});
    if (!db.change_query.empty()) {  // the daemon runs it as it is, every poll
        pqxx::work tx(conn);
        try {
            tx.exec0("SET LOCAL statement_timeout = '30s'");
            tx.exec(db.change_query);
            out.push_back({"database.change_query", ""});
        } catch (const pqxx::sql_error& e) {
            out.push_back({"database.change_query", text::one_line(e.what())});
        }
    }
    return out;
}

SourceStats Source::load_source(const config::DatabaseConfig& db, const std::vector<std::string>& only_groups) {
    SourceStats stats;
    pqxx::work tx(pq(conn_));
    tx.exec0("DROP TABLE IF EXISTS pg_temp.cdp_src, pg_temp.cdp_desired, pg_temp.cdp_desired_group,"
             " pg_temp.cdp_only");
    tx.exec0("CREATE TEMP TABLE cdp_src (customer_id bigint, group_name text, reason text, raw_customer text)");
    tx.exec0("CREATE TEMP TABLE cdp_desired_group (name text, description text, folder text, reason text,"
             " retained boolean NOT NULL DEFAULT false)");

    const std::string membership_sql =
        "INSERT INTO pg_temp.cdp_src (customer_id, group_name, reason, raw_customer) " +
        membership_select(db.desired_memberships);
    try {
        pqxx::subtransaction sub(tx, "membership_source");
        sub.exec0(membership_sql);
        sub.commit();
    } catch (const pqxx::sql_error& e) {
        throw SourceError(std::string("database.desired_memberships failed: ") + e.what());
    }

    if (!db.desired_groups.empty()) {
        try {
            pqxx::subtransaction sub(tx, "group_source");
            sub.exec0("INSERT INTO pg_temp.cdp_desired_group (name, description, folder, reason) " +
                      group_select(sub, db.desired_groups));
            sub.commit();
        } catch (const pqxx::sql_error& e) {
            throw SourceError(std::string("database.desired_groups failed: ") + e.what());
        }
    }

    if (db.desired_groups.empty()) {
        // Without a group list, the groups are the names the rows mention. A static group
        // synced before stays managed when its rows vanish, with no desired member: its
        // members are removed (behind the delete guard) instead of silently kept.
        tx.exec0(sql("INSERT INTO pg_temp.cdp_desired_group (name, retained)"
                     " SELECT m.name, true FROM @.group_map m"
                     " WHERE m.group_id > 0 AND m.type = 1 AND coalesce(m.error, '') = ''"
                     " AND NOT EXISTS (SELECT 1 FROM pg_temp.cdp_src s WHERE s.group_name = m.name AND s.reason IS NULL)"));
    }

    if (!only_groups.empty()) {
        tx.exec0("CREATE TEMP TABLE cdp_only (name text PRIMARY KEY)");
        for (const auto& n : only_groups)
            tx.exec_params("INSERT INTO pg_temp.cdp_only VALUES ($1) ON CONFLICT DO NOTHING", n);
        tx.exec0("DELETE FROM pg_temp.cdp_src s WHERE s.group_name IS NULL"
                 " OR NOT EXISTS (SELECT 1 FROM pg_temp.cdp_only o WHERE o.name = s.group_name)");
        tx.exec0("DELETE FROM pg_temp.cdp_desired_group s WHERE s.name IS NULL"
                 " OR NOT EXISTS (SELECT 1 FROM pg_temp.cdp_only o WHERE o.name = s.name)");
    }

    auto r = tx.exec1("SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL) FROM pg_temp.cdp_src");
    stats.rows_read = r[0].as<int64_t>();
    stats.rows_rejected = r[1].as<int64_t>();
    auto g = tx.exec1("SELECT count(*) FILTER (WHERE NOT retained), count(*) FILTER (WHERE reason IS NOT NULL)"
                      " FROM pg_temp.cdp_desired_group");
    stats.group_rows = g[0].as<int64_t>();
    stats.rows_rejected += g[1].as<int64_t>();

    for (const auto& row : tx.exec(
             "SELECT reason, count(*) FROM pg_temp.cdp_src WHERE reason IS NOT NULL GROUP BY 1"
             " UNION ALL SELECT 'desired_groups: ' || reason, count(*) FROM pg_temp.cdp_desired_group"
             " WHERE reason IS NOT NULL GROUP BY 1 ORDER BY 1"))
        stats.rejected_by_reason[row[0].as<std::string>()] = row[1].as<int64_t>();
    for (const auto& row : tx.exec(
             "(SELECT reason, coalesce(raw_customer, ''), coalesce(group_name, '') FROM pg_temp.cdp_src"
             "  WHERE reason IS NOT NULL LIMIT 10)"
             " UNION ALL (SELECT 'desired_groups: ' || reason, '', coalesce(name, '') FROM pg_temp.cdp_desired_group"
             "  WHERE reason IS NOT NULL LIMIT 5) LIMIT 10"))
        stats.examples.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>()});

    tx.exec0("CREATE TEMP TABLE cdp_desired AS SELECT DISTINCT customer_id, group_name"
             " FROM pg_temp.cdp_src WHERE reason IS NULL");
    stats.desired = tx.exec1("SELECT count(*) FROM pg_temp.cdp_desired")[0].as<int64_t>();
    stats.duplicates = stats.rows_read - stats.rows_rejected + g[1].as<int64_t>() - stats.desired;
    tx.exec0("DROP TABLE pg_temp.cdp_src");
    tx.exec0("ANALYZE pg_temp.cdp_desired");
    tx.commit();
    return stats;
}

std::vector<DesiredGroup> Source::desired_groups() {
    pqxx::work tx(pq(conn_));
    std::vector<DesiredGroup> out;
    // A name listed twice in desired_groups takes its first non-null description/folder.
    auto rows = tx.exec(
        "WITH g AS (SELECT name, (array_agg(description) FILTER (WHERE description IS NOT NULL))[1] AS description,"
        "                  (array_agg(folder) FILTER (WHERE folder IS NOT NULL))[1] AS folder,"
        "                  bool_and(retained) AS retained"
        "           FROM pg_temp.cdp_desired_group WHERE reason IS NULL GROUP BY name),"
        " m AS (SELECT group_name AS name, count(*) AS members FROM pg_temp.cdp_desired GROUP BY 1)"
        " SELECT coalesce(g.name, m.name), g.description, g.folder, coalesce(m.members, 0),"
        "        g.name IS NOT NULL AND NOT g.retained, coalesce(g.retained, false)"
        " FROM g FULL JOIN m ON m.name = g.name ORDER BY 1");
    for (const auto& row : rows) {
        DesiredGroup d;
        d.name = row[0].as<std::string>();
        if (!row[1].is_null()) d.description = row[1].as<std::string>();
        else if (row[4].as<bool>()) d.description = std::nullopt;
        if (!row[2].is_null()) d.folder = row[2].as<std::string>();
        d.members = row[3].as<int64_t>();
        d.retained = row[5].as<bool>();
        out.push_back(std::move(d));
    }
    tx.commit();
    return out;
}

}  // namespace cdpsync::store
