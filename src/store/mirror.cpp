// The group map and the mirror of the CDP's memberships, with resumable snapshots.
#include <pqxx/pqxx>

#include "store/pq.hpp"
#include "store/group_map.hpp"
#include "store/mirror.hpp"
#include "store/schema.hpp"

namespace cdpsync::store {

std::map<std::string, GroupMapping> GroupMap::group_map() {
    pqxx::work tx(pq(conn_));
    std::map<std::string, GroupMapping> out;
    for (const auto& row : tx.exec(sql("SELECT name, group_id, type, description, folder_id, created_by_us,"
                                       " snapshot_at IS NOT NULL, coalesce(error, ''), recheck FROM @.group_map"))) {
        GroupMapping g;
        g.name = row[0].as<std::string>();
        if (!row[1].is_null()) g.group_id = row[1].as<int64_t>();
        g.type = row[2].as<int>();
        if (!row[3].is_null()) g.description = row[3].as<std::string>();
        if (!row[4].is_null()) g.folder_id = row[4].as<int64_t>();
        g.created_by_us = row[5].as<bool>();
        g.snapshotted = row[6].as<bool>();
        g.error = row[7].as<std::string>();
        g.recheck = row[8].as<bool>();
        out.emplace(g.name, std::move(g));
    }
    tx.commit();
    return out;
}

void GroupMap::save_group(const GroupMapping& g) {
    pqxx::work tx(pq(conn_));
    // Another name that pointed at this id no longer does (the group was renamed in the CDP).
    if (g.group_id)
        tx.exec_params(sql("UPDATE @.group_map SET group_id = NULL, snapshot_at = NULL, updated_at = now()"
                           " WHERE group_id = $1 AND name <> $2"),
                       *g.group_id, g.name);
    tx.exec_params(
        sql("INSERT INTO @.group_map (name, group_id, type, description, folder_id, created_by_us, error, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''), now())"
            " ON CONFLICT (name) DO UPDATE SET"
            "  snapshot_at = CASE WHEN @.group_map.group_id IS NOT DISTINCT FROM excluded.group_id"
            "                THEN @.group_map.snapshot_at END,"
            "  group_id = excluded.group_id, type = excluded.type, description = excluded.description,"
            "  folder_id = excluded.folder_id,"
            "  created_by_us = CASE WHEN @.group_map.group_id IS NOT DISTINCT FROM excluded.group_id"
            "                  THEN @.group_map.created_by_us OR excluded.created_by_us"
            "                  ELSE excluded.created_by_us END,"
            "  error = excluded.error, recheck = false, updated_at = now()"),
        g.name, g.group_id, g.type, g.description, g.folder_id, g.created_by_us, g.error);
    tx.commit();
}

void GroupMap::flag_group_recheck(int64_t group_id) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("UPDATE @.group_map SET recheck = true, updated_at = now() WHERE group_id = $1"), group_id);
    tx.commit();
}

void GroupMap::forget_group(const std::string& name, int64_t group_id) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("DELETE FROM @.remote_member WHERE group_id = $1"), group_id);
    tx.exec_params(sql("DELETE FROM @.group_map WHERE name = $1 AND group_id = $2"), name, group_id);
    tx.commit();
}

void Mirror::reset_group_mirror(int64_t group_id, bool snapshotted) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("DELETE FROM @.remote_member WHERE group_id = $1"), group_id);
    tx.exec_params(sql("UPDATE @.group_map SET snapshot_at = CASE WHEN $2 THEN now() END WHERE group_id = $1"),
                   group_id, snapshotted);
    tx.commit();
}

void Mirror::snapshot_begin(int64_t snapshot_id, const std::vector<int64_t>& group_ids, int page_size) {
    pqxx::work tx(pq(conn_));
    for (int64_t g : group_ids)
        tx.exec_params(sql("INSERT INTO @.snapshot_cursor (snapshot_id, group_id, page_size) VALUES ($1, $2, $3)"
                           " ON CONFLICT DO NOTHING"),
                       snapshot_id, g, page_size);
    tx.commit();
}

void Mirror::snapshot_restart_group(int64_t snapshot_id, int64_t group_id, int page_size) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("DELETE FROM @.snapshot_member WHERE snapshot_id = $1 AND group_id = $2"), snapshot_id, group_id);
    tx.exec_params(sql("UPDATE @.snapshot_cursor SET next_page = 1, page_size = $3, done = false"
                       " WHERE snapshot_id = $1 AND group_id = $2"),
                   snapshot_id, group_id, page_size);
    tx.commit();
}

std::map<int64_t, SnapshotCursor> Mirror::snapshot_cursors(int64_t snapshot_id) {
    pqxx::work tx(pq(conn_));
    std::map<int64_t, SnapshotCursor> out;
    for (const auto& row : tx.exec_params(
             sql("SELECT group_id, next_page, page_size, done, unreliable FROM @.snapshot_cursor"
                 " WHERE snapshot_id = $1"),
             snapshot_id))
        out[row[0].as<int64_t>()] = {row[0].as<int64_t>(), row[1].as<int64_t>(), row[2].as<int>(), row[3].as<bool>(),
                                     row[4].as<bool>()};
    tx.commit();
    return out;
}

namespace {

// One page and its cursor inside `tx`; false (nothing written) unless page == next_page.
bool write_page(pqxx::work& tx, const Mirror& store, const Mirror::PageRows& p) {
    auto r = tx.exec_params(store.sql("UPDATE @.snapshot_cursor SET next_page = next_page + 1"
                                      " WHERE snapshot_id = $1 AND group_id = $2 AND next_page = $3 AND NOT done"),
                            p.snapshot_id, p.group_id, p.page);
    if (r.affected_rows() != 1) return false;
    if (!p.customer_ids.empty()) {
        pqxx::stream_to copy(tx, store.sql("@.snapshot_member"),
                             std::vector<std::string>{"snapshot_id", "group_id", "customer_id"});
        for (int64_t c : p.customer_ids) copy << std::make_tuple(p.snapshot_id, p.group_id, c);
        copy.complete();
    }
    return true;
}

}  // namespace

bool Mirror::snapshot_page(int64_t snapshot_id, int64_t group_id, int64_t page,
                          const std::vector<int64_t>& customer_ids) {
    return snapshot_pages({PageRows{snapshot_id, group_id, page, customer_ids}}) == 1;
}

int64_t Mirror::snapshot_pages(const std::vector<PageRows>& pages) {
    pqxx::work tx(pq(conn_));
    tx.exec0("SET LOCAL synchronous_commit = off");
    int64_t taken = 0;
    for (const auto& p : pages)
        if (write_page(tx, *this, p)) ++taken;
    tx.commit();
    return taken;
}

int64_t Mirror::snapshot_finish_group(int64_t snapshot_id, int64_t group_id, bool unreliable) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("DELETE FROM @.remote_member WHERE group_id = $1"), group_id);
    auto ins = tx.exec_params(sql("INSERT INTO @.remote_member (group_id, customer_id)"
                                  " SELECT DISTINCT $2::bigint, customer_id FROM @.snapshot_member"
                                  " WHERE snapshot_id = $1 AND group_id = $2"),
                              snapshot_id, group_id);
    tx.exec_params(sql("DELETE FROM @.snapshot_member WHERE snapshot_id = $1 AND group_id = $2"), snapshot_id,
                   group_id);
    tx.exec_params(sql("UPDATE @.snapshot_cursor SET done = true, unreliable = $3"
                       " WHERE snapshot_id = $1 AND group_id = $2"),
                   snapshot_id, group_id, unreliable);
    tx.exec_params(sql("UPDATE @.group_map SET snapshot_at = now() WHERE group_id = $1"), group_id);
    tx.commit();
    return static_cast<int64_t>(ins.affected_rows());
}

void Mirror::snapshot_discard(int64_t snapshot_id) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("DELETE FROM @.snapshot_member WHERE snapshot_id = $1"), snapshot_id);
    tx.exec_params(sql("DELETE FROM @.snapshot_cursor WHERE snapshot_id = $1"), snapshot_id);
    tx.commit();
}

void Mirror::snapshot_gc() {
    pqxx::work tx(pq(conn_));
    tx.exec0(sql("DELETE FROM @.snapshot_member WHERE snapshot_id NOT IN (SELECT id FROM @.run WHERE status IN ('running', 'interrupted'))"));
    tx.exec0(sql("DELETE FROM @.snapshot_cursor WHERE snapshot_id NOT IN (SELECT id FROM @.run WHERE status IN ('running', 'interrupted'))"));
    tx.commit();
}

Mirror::PassCount Mirror::snapshot_pass_count(int64_t snapshot_id, int64_t group_id) {
    pqxx::work tx(pq(conn_));
    auto r = tx.exec_params1(sql("SELECT count(*), count(DISTINCT customer_id) FROM @.snapshot_member"
                                 " WHERE snapshot_id = $1 AND group_id = $2"),
                             snapshot_id, group_id);
    tx.commit();
    return {r[0].as<int64_t>(), r[1].as<int64_t>()};
}

std::map<int64_t, int64_t> Mirror::mirror_counts(const std::vector<int64_t>& group_ids) {
    pqxx::work tx(pq(conn_));
    std::map<int64_t, int64_t> out;
    for (int64_t g : group_ids) out[g] = 0;
    for (const auto& row : tx.exec_params(sql("SELECT group_id, count(*) FROM @.remote_member"
                                              " WHERE group_id = ANY($1::bigint[]) GROUP BY group_id"),
                                          to_pg_array(group_ids)))
        out[row[0].as<int64_t>()] = row[1].as<int64_t>();
    tx.commit();
    return out;
}

bool Mirror::identity_confirmed(const std::string& field) {
    pqxx::work tx(pq(conn_));
    const bool yes = tx.exec_params1(sql("SELECT EXISTS (SELECT 1 FROM @.identity_confirmation WHERE field = $1)"),
                                     field)[0]
                         .as<bool>();
    tx.commit();
    return yes;
}

void Mirror::confirm_identity(const std::string& field, const std::string& resolved_field, int64_t group_id,
                             const std::vector<int64_t>& customer_ids) {
    pqxx::work tx(pq(conn_));
    tx.exec_params(sql("INSERT INTO @.identity_confirmation (field, resolved_field, group_id, customer_ids)"
                       " VALUES ($1, $2, $3, $4::bigint[])"
                       " ON CONFLICT (field) DO UPDATE SET resolved_field = excluded.resolved_field,"
                       " group_id = excluded.group_id, customer_ids = excluded.customer_ids, confirmed_at = now()"),
                   field, resolved_field, group_id, to_pg_array(customer_ids));
    tx.commit();
}

int64_t Mirror::mirror_count(int64_t group_id) {
    pqxx::work tx(pq(conn_));
    auto n = tx.exec_params1(sql("SELECT count(*) FROM @.remote_member WHERE group_id = $1"), group_id)[0].as<int64_t>();
    tx.commit();
    return n;
}

}  // namespace cdpsync::store
