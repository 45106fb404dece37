// Versioned migrations of the cdp_sync schema and the one-writer lock.
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "store/pq.hpp"
#include "store/session.hpp"

namespace cdpsync::store {
namespace {

// Advisory lock namespaces (first key); the second key is hashtext(schema name).
constexpr int kMigrateLock = 0x0cd95001;
constexpr int kApplyLock = 0x0cd95002;

struct Migration {
    int version;
    const char* description;
    const char* sql;
};

const Migration kMigrations[] = {
    {1, "initial schema", R"SQL(
CREATE TABLE @.group_map (
    name text PRIMARY KEY,
    group_id bigint,
    type int NOT NULL DEFAULT 1,
    description text,
    folder_id bigint,
    created_by_us boolean NOT NULL DEFAULT false,
    snapshot_at timestamptz,
    error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE @.remote_member (
    group_id bigint NOT NULL,
    customer_id bigint NOT NULL,
    PRIMARY KEY (group_id, customer_id)
);
CREATE INDEX remote_member_customer ON @.remote_member (customer_id);
-- Unlogged: lost only on a server crash, together with the cursors, which then restart.
CREATE UNLOGGED TABLE @.snapshot_cursor (
    snapshot_id bigint NOT NULL,
    group_id bigint NOT NULL,
    next_page bigint NOT NULL DEFAULT 1,
    page_size int NOT NULL,
    done boolean NOT NULL DEFAULT false,
    PRIMARY KEY (snapshot_id, group_id)
);
CREATE UNLOGGED TABLE @.snapshot_member (
    snapshot_id bigint NOT NULL,
    group_id bigint NOT NULL,
    customer_id bigint NOT NULL
);
CREATE INDEX snapshot_member_group ON @.snapshot_member (snapshot_id, group_id);
CREATE TABLE @.run (
    id bigserial PRIMARY KEY,
    mode text NOT NULL,
    phase text NOT NULL DEFAULT 'source',
    status text NOT NULL DEFAULT 'running',
    force boolean NOT NULL DEFAULT false,
    pid int,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    rows_read bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0,
    adds bigint NOT NULL DEFAULT 0,
    removes bigint NOT NULL DEFAULT 0,
    ops_planned bigint NOT NULL DEFAULT 0,
    ops_done bigint NOT NULL DEFAULT 0,
    ops_failed bigint NOT NULL DEFAULT 0,
    ops_permanent bigint NOT NULL DEFAULT 0,
    calls bigint NOT NULL DEFAULT 0,
    retries bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0,
    member_pages bigint NOT NULL DEFAULT 0,
    groups_created bigint NOT NULL DEFAULT 0,
    group_errors bigint NOT NULL DEFAULT 0,
    error text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX run_status ON @.run (status) WHERE status = 'running';
CREATE TABLE @.op (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES @.run (id),
    customer_id bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('add', 'remove', 'set')),
    group_ids bigint[] NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'done', 'failed', 'permanent', 'superseded')),
    attempts int NOT NULL DEFAULT 0,
    http_status int,
    cdp_code int,
    msg text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX op_run_state ON @.op (run_id, state, id);
CREATE INDEX op_open ON @.op (customer_id) WHERE state IN ('pending', 'failed', 'permanent');
)SQL"},
    // The daemon's tables were created by the daemon itself (IF NOT EXISTS) before they
    // became a migration; IF NOT EXISTS keeps such schemas working.
    {2, "daemon control tables; interrupted runs", R"SQL(
CREATE TABLE IF NOT EXISTS @.resync_request (
    id bigserial PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by text NOT NULL DEFAULT '',
    force boolean NOT NULL DEFAULT false,
    only_groups text[] NOT NULL DEFAULT '{}',
    started_at timestamptz,
    finished_at timestamptz,
    run_id bigint,
    outcome text,
    exit_code int,
    message text
);
CREATE TABLE IF NOT EXISTS @.daemon_leader (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    pid int,
    host text,
    started_at timestamptz,
    phase text,
    phase_since timestamptz,
    heartbeat_at timestamptz,
    next_full_at timestamptz
);
DROP INDEX @.run_status;
CREATE INDEX run_open ON @.run (status) WHERE status IN ('running', 'interrupted');
)SQL"},
    {3, "group_map.recheck: a write said the group does not exist", R"SQL(
ALTER TABLE @.group_map ADD COLUMN recheck boolean NOT NULL DEFAULT false;
)SQL"},
    // A failed or permanent op waits until next_attempt_at (carried onto the identical op of
    // the next incremental run; a full run or `retry-failed` clears it). The circuit breaker
    // and the customerGroupIdList cap learned from refusals live in cdp_state, so that a
    // `run --once` from a timer sees what the last process learned. Ops of version 3 have no
    // next_attempt_at: they are retried on the next run.
    {4, "op.next_attempt_at; cdp_state (circuit breaker, learned group list cap)", R"SQL(
ALTER TABLE @.op ADD COLUMN next_attempt_at timestamptz;
CREATE TABLE @.cdp_state (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    breaker text NOT NULL DEFAULT 'closed' CHECK (breaker IN ('closed', 'open', 'half_open')),
    breaker_since timestamptz NOT NULL DEFAULT now(),
    breaker_reason text NOT NULL DEFAULT '',
    max_groups_per_call int CHECK (max_groups_per_call > 0)
);
INSERT INTO @.cdp_state DEFAULT VALUES;
)SQL"},
    {5, "member identity confirmations; unreliable group reads; run.drift_corrections", R"SQL(
CREATE TABLE @.identity_confirmation (
    field text PRIMARY KEY,           -- cdp.customer_id_field as set: 'auto' or a field name
    resolved_field text NOT NULL,     -- the record field the ids were read from
    group_id bigint NOT NULL,
    customer_ids bigint[] NOT NULL,
    confirmed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE @.snapshot_cursor ADD COLUMN IF NOT EXISTS unreliable boolean NOT NULL DEFAULT false;
ALTER TABLE @.run ADD COLUMN IF NOT EXISTS drift_corrections bigint NOT NULL DEFAULT 0;
)SQL"},
};

}  // namespace

std::string with_schema(const std::string& tmpl, const std::string& quoted_schema) {
    std::string out;
    for (size_t i = 0; i < tmpl.size(); ++i) {
        if (tmpl[i] == '@' && i + 1 < tmpl.size() && tmpl[i + 1] == '.') {
            out += quoted_schema;
            out += '.';
            ++i;
        } else {
            out += tmpl[i];
        }
    }
    return out;
}

int migrate_schema(Connection& connection, const std::string& schema, spdlog::logger& log) {
    auto& conn = pq(connection);
    if (!is_plain_identifier(schema))
        throw std::invalid_argument("database.schema is not a plain SQL identifier: " + schema);
    const std::string quoted = conn.quote_name(schema);
    auto sql = [&](const std::string& tmpl) { return with_schema(tmpl, quoted); };
    pqxx::work tx(conn);
    tx.exec_params("SELECT pg_advisory_xact_lock($1, hashtext($2))", kMigrateLock, schema);
    tx.exec0("SET LOCAL client_min_messages = warning");
    tx.exec0("CREATE SCHEMA IF NOT EXISTS " + quoted);
    tx.exec0(sql("CREATE TABLE IF NOT EXISTS @.schema_version ("
                 " version int PRIMARY KEY, description text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())"));
    int current = tx.exec1(sql("SELECT coalesce(max(version), 0) FROM @.schema_version"))[0].as<int>();
    if (current > kSchemaVersion)
        throw std::runtime_error("schema " + schema + " is at version " + std::to_string(current) +
                                 ", newer than this cdp-sync knows (" + std::to_string(kSchemaVersion) + ")");
    for (const auto& m : kMigrations) {
        if (m.version <= current) continue;
        tx.exec0(sql(m.sql));
        tx.exec_params(sql("INSERT INTO @.schema_version (version, description) VALUES ($1, $2)"),
                       m.version, m.description);
        log.info("schema {}: applied migration {} ({})", schema, m.version, m.description);
        current = m.version;
    }
    tx.commit();
    return current;
}

int schema_version(Connection& connection, const std::string& schema) {
    pqxx::work tx(pq(connection));
    const bool exists =
        tx.exec_params1("SELECT to_regclass($1) IS NOT NULL", pq(connection).quote_name(schema) + ".schema_version")[0]
            .as<bool>();
    if (!exists) return 0;
    const int version =
        tx.exec1(with_schema("SELECT coalesce(max(version), 0) FROM @.schema_version", pq(connection).quote_name(schema)))[0]
            .as<int>();
    tx.commit();
    return version;
}

int Session::migrate() { return migrate_schema(conn, schema(), *log); }

std::optional<ApplyLock> Session::lock_apply() { return ApplyLock::try_take(conn, schema()); }

std::optional<ApplyLock> ApplyLock::try_take(Connection& conn, const std::string& schema) {
    pqxx::nontransaction tx(pq(conn));
    if (!tx.exec_params1("SELECT pg_try_advisory_lock($1, hashtext($2))", kApplyLock, schema)[0].as<bool>())
        return std::nullopt;
    return ApplyLock(conn, schema);
}

ApplyLock::~ApplyLock() {
    if (!conn_) return;
    try {
        pqxx::nontransaction tx(pq(*conn_));
        tx.exec_params("SELECT pg_advisory_unlock($1, hashtext($2))", kApplyLock, schema_);
    } catch (const pqxx::broken_connection&) {
        // The session is gone, and the lock with it.
    } catch (const std::exception& e) {
        spdlog::warn("releasing the apply lock failed: {}", e.what());
    }
}

}  // namespace cdpsync::store
