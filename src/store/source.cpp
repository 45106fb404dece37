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
// group_name_problem(). A name the first test accepts passes every rule, so the usual valid
// name costs one regex and a length instead of the whole chain.
std::string name_reason_sql(const std::string& n) {
    const std::string max = std::to_string(kMaxGroupNameChars);
    return "CASE WHEN " + n + " ~ '^[^\\x01-\\x1f\\x7f ]([^\\x01-\\x1f\\x7f]*[^\\x01-\\x1f\\x7f ])?$'"
           " AND char_length(" + n + ") <= " + max + " THEN NULL"
           " WHEN " + n + " IS NULL THEN 'null group name'"
           " WHEN btrim(" + n + ", ' ') = '' THEN 'empty group name'"
           " WHEN " + n + " ~ '[\\x01-\\x1f\\x7f]' THEN 'group name has control characters'"
           " WHEN " + n + " <> btrim(" + n + ", ' ') THEN 'group name has leading or trailing spaces'"
           " WHEN char_length(" + n + ") > " + max + " THEN 'group name longer than " + max + " characters'"
           " END";
}

// How the query's customer_id column is checked: an integer column (smallint, integer,
// bigint) can only be NULL or non-positive; anything else is read as text.
enum class CustomerIdColumn { integer, text };

CustomerIdColumn customer_id_column(pqxx::transaction_base& tx, const std::string& query) {
    const auto probe = tx.exec("SELECT * FROM " + subquery(query) + " AS q LIMIT 0");
    if (probe.columns() < 1) return CustomerIdColumn::text;  // the select below reports it
    constexpr pqxx::oid kInt8 = 20, kInt2 = 21, kInt4 = 23;
    const pqxx::oid type = probe.column_type(0);
    return type == kInt8 || type == kInt2 || type == kInt4 ? CustomerIdColumn::integer : CustomerIdColumn::text;
}

// The reason the customer id `cid` is unusable, NULL when fine. Text: digits without sign or
// padding that fit a bigint pass the first test; the rest takes the whole chain.
std::string customer_id_reason_sql(CustomerIdColumn column) {
    if (column == CustomerIdColumn::integer)
        return "CASE WHEN cid IS NULL THEN 'null customer id' WHEN cid <= 0 THEN 'non-positive customer id' END";
    return "CASE WHEN cid IS NULL THEN 'null customer id'"
           " WHEN cid ~ '^[1-9][0-9]*$' AND octet_length(cid) <= 18 THEN NULL"
           " WHEN cid !~ '^\\s*[+-]?[0-9]{1,30}\\s*$' THEN 'customer id is not an integer'"
           " WHEN cid::numeric <= 0 THEN 'non-positive customer id'"
           " WHEN cid::numeric > 9223372036854775807 THEN 'customer id out of range'"
           " END";
}

// The desired memberships as the run reads them: (cid, name, reason), every row checked
// once; `cid::bigint` is the customer id of a row without a reason. The query needs at least
// two columns. With `only`, rows of groups not in pg_temp.cdp_only are not read at all.
std::string membership_select(const std::string& query, CustomerIdColumn column, bool only = false) {
    const std::string cid_type = column == CustomerIdColumn::integer ? "bigint" : "text";
    return "SELECT cid, name, coalesce(" + customer_id_reason_sql(column) + ", " + name_reason_sql("name") +
           ") AS reason"
           " FROM (SELECT q.customer_id::" + cid_type + " AS cid, q.group_name::text AS name"
           "       FROM " + subquery(query) + " AS q (customer_id, group_name)) c" +
           (only ? " WHERE name IN (SELECT o.name FROM pg_temp.cdp_only o)" : "");
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

void create_source_tables(pqxx::work& tx, const std::vector<std::string>& only_groups) {
    tx.exec0("DROP VIEW IF EXISTS pg_temp.cdp_wanted");  // plan.cpp's view over cdp_desired
    tx.exec0("DROP TABLE IF EXISTS pg_temp.cdp_rejected, pg_temp.cdp_desired, pg_temp.cdp_desired_group,"
             " pg_temp.cdp_only");
    tx.exec0("CREATE TEMP TABLE cdp_rejected (reason text NOT NULL, raw_customer text, group_name text)");
    tx.exec0("CREATE TEMP TABLE cdp_desired (customer_id bigint NOT NULL, group_name text NOT NULL)");
    tx.exec0("CREATE TEMP TABLE cdp_desired_group (name text, description text, folder text, reason text,"
             " retained boolean NOT NULL DEFAULT false)");
    if (only_groups.empty()) return;
    tx.exec0("CREATE TEMP TABLE cdp_only (name text PRIMARY KEY)");
    for (const auto& n : only_groups)
        tx.exec_params("INSERT INTO pg_temp.cdp_only VALUES ($1) ON CONFLICT DO NOTHING", n);
}

// The membership query, run once in one pass: its rows held by the server, rejected rows to
// cdp_rejected in the query's order, the distinct valid pairs to cdp_desired by a sort
// (cheaper than hashing 1M (bigint, text) keys; it leaves cdp_desired in customer order).
// work_mem above the session's 64 MB keeps 1M rows (about 70 MB) and their sort (about
// 95 MB) in memory. Returns the rows read.
int64_t load_memberships(pqxx::work& tx, const config::DatabaseConfig& db, bool only) {
    try {
        pqxx::subtransaction sub(tx, "membership_source");
        const CustomerIdColumn column = customer_id_column(sub, db.desired_memberships);
        sub.exec0("SET LOCAL work_mem = '128MB'");
        const auto rows = sub.exec1(
            "WITH src AS MATERIALIZED (" + membership_select(db.desired_memberships, column, only) + "),"
            " rejected AS (INSERT INTO pg_temp.cdp_rejected (reason, raw_customer, group_name)"
            "   SELECT reason, left(cid::text, 40), name FROM src WHERE reason IS NOT NULL),"
            " desired AS (INSERT INTO pg_temp.cdp_desired (customer_id, group_name)"
            "   SELECT DISTINCT ON (cid::bigint, name COLLATE \"C\") cid::bigint, name FROM src"
            "   WHERE reason IS NULL ORDER BY cid::bigint, name COLLATE \"C\")"
            " SELECT count(*) FROM src")[0].as<int64_t>();
        sub.commit();
        return rows;
    } catch (const pqxx::sql_error& e) {
        throw SourceError(std::string("database.desired_memberships failed: ") + e.what());
    }
}

void load_groups(pqxx::work& tx, const config::DatabaseConfig& db, bool only) {
    try {
        pqxx::subtransaction sub(tx, "group_source");
        sub.exec0("INSERT INTO pg_temp.cdp_desired_group (name, description, folder, reason) " +
                  group_select(sub, db.desired_groups));
        sub.commit();
    } catch (const pqxx::sql_error& e) {
        throw SourceError(std::string("database.desired_groups failed: ") + e.what());
    }
    if (only)
        tx.exec0("DELETE FROM pg_temp.cdp_desired_group s WHERE s.name IS NULL"
                 " OR NOT EXISTS (SELECT 1 FROM pg_temp.cdp_only o WHERE o.name = s.name)");
}

// Without a group list, the groups are the names the rows mention. A static group synced
// before stays managed when its rows vanish, with no desired member: its members are removed
// (behind the delete guard) instead of silently kept.
void add_retained_groups(pqxx::work& tx, const Repository& store, bool only) {
    tx.exec0(store.sql("INSERT INTO pg_temp.cdp_desired_group (name, retained)"
                       " SELECT m.name, true FROM @.group_map m"
                       " WHERE m.group_id > 0 AND m.type = 1 AND coalesce(m.error, '') = ''"
                       " AND NOT EXISTS (SELECT 1 FROM pg_temp.cdp_desired d WHERE d.group_name = m.name)" +
                       std::string(only ? " AND m.name IN (SELECT o.name FROM pg_temp.cdp_only o)" : "")));
}

// The rejected rows of both queries: counts by reason and the first examples.
void count_rejected(pqxx::work& tx, SourceStats& stats) {
    for (const auto& row : tx.exec(
             "SELECT reason, count(*) FROM pg_temp.cdp_rejected GROUP BY 1"
             " UNION ALL SELECT 'desired_groups: ' || reason, count(*) FROM pg_temp.cdp_desired_group"
             " WHERE reason IS NOT NULL GROUP BY 1 ORDER BY 1")) {
        stats.rejected_by_reason[row[0].as<std::string>()] = row[1].as<int64_t>();
        stats.rows_rejected += row[1].as<int64_t>();
    }
    for (const auto& row : tx.exec(
             "(SELECT reason, coalesce(raw_customer, ''), coalesce(group_name, '') FROM pg_temp.cdp_rejected LIMIT 10)"
             " UNION ALL (SELECT 'desired_groups: ' || reason, '', coalesce(name, '') FROM pg_temp.cdp_desired_group"
             "  WHERE reason IS NOT NULL LIMIT 5) LIMIT 10"))
        stats.examples.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>()});
}

}  // namespace

std::vector<QueryCheck> check_source_queries(Connection& connection, const config::DatabaseConfig& db) {
    auto& conn = pq(connection);
    std::vector<QueryCheck> out;
    out.push_back({"database.desired_memberships",
                   try_select(conn, [&](pqxx::work& tx) {
                       return membership_select(db.desired_memberships,
                                                customer_id_column(tx, db.desired_memberships));
                   })});
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
    const bool only = !only_groups.empty();
    pqxx::work tx(pq(conn_));
    create_source_tables(tx, only_groups);
    stats.rows_read = load_memberships(tx, db, only);
    tx.exec0("ANALYZE pg_temp.cdp_desired");
    if (!db.desired_groups.empty()) load_groups(tx, db, only);
    else add_retained_groups(tx, *this, only);

    stats.desired = tx.exec1("SELECT count(*) FROM pg_temp.cdp_desired")[0].as<int64_t>();
    stats.group_rows = tx.exec1("SELECT count(*) FROM pg_temp.cdp_desired_group WHERE NOT retained")[0].as<int64_t>();
    count_rejected(tx, stats);
    const int64_t membership_rejected =
        tx.exec1("SELECT count(*) FROM pg_temp.cdp_rejected")[0].as<int64_t>();
    stats.duplicates = stats.rows_read - membership_rejected - stats.desired;
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
