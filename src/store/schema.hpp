// The cdp_sync schema: versioned migrations, the "@." placeholder of its SQL, and the
// one-writer lock.
//
// | table            | holds                                                              |
// |------------------|--------------------------------------------------------------------|
// | schema_version   | applied migrations                                                 |
// | group_map        | desired group name -> CDP group id, type, description, folder      |
// | remote_member    | the mirror: (group_id, customer_id) the CDP is known to hold        |
// | snapshot_cursor  | per snapshot (= run id) and group: next page to read, done          |
// | snapshot_member  | pages read of a group whose snapshot is not finished yet            |
// | run              | one row per run: mode, phase, status, counts, error                 |
// | op               | the journal: one planned write call per row and its outcome         |
// | cdp_state        | one row: the circuit breaker, the group list cap learned             |
// | identity_confirmation | member id fields confirmed against getGroupsByCustomerId       |
// | daemon_leader, resync_request | the daemon's (store/control.hpp)                      |
#pragma once

#include <optional>
#include <string>
#include <utility>

#include <spdlog/logger.h>

#include "config/text.hpp"
#include "store/connection.hpp"

namespace cdpsync::store {

inline constexpr int kSchemaVersion = 5;

// The schema-name rule (config/text.hpp): the one database.schema is validated with.
using text::is_plain_identifier;

// `tmpl` with every "@." replaced by `quoted_schema` and a dot.
std::string with_schema(const std::string& tmpl, const std::string& quoted_schema);

// Applies missing migrations of the cdp_sync schema named `schema` in one transaction under
// an advisory lock; idempotent and safe with concurrent callers. Returns the version.
int migrate_schema(Connection& conn, const std::string& schema, spdlog::logger& log);

// The version of `schema` as applied (0: no cdp_sync schema there, or none migrated yet).
int schema_version(Connection& conn, const std::string& schema);

// The one-writer lock (a session advisory lock on the schema), held while this lives.
class [[nodiscard]] ApplyLock {
public:
    ApplyLock(ApplyLock&& other) noexcept
        : conn_(std::exchange(other.conn_, nullptr)), schema_(std::move(other.schema_)) {}
    ApplyLock& operator=(ApplyLock&&) = delete;
    ApplyLock(const ApplyLock&) = delete;
    ~ApplyLock();  // unlocks; a broken connection has released it already

    // The lock on `conn`'s session; nullopt when another session holds it.
    static std::optional<ApplyLock> try_take(Connection& conn, const std::string& schema);

private:
    ApplyLock(Connection& conn, std::string schema) : conn_(&conn), schema_(std::move(schema)) {}
    Connection* conn_;
    std::string schema_;
};

}  // namespace cdpsync::store
