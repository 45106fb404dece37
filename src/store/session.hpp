// The engine's PostgreSQL session: one Connection (tuned for the engine's bulk work) and
// the repositories over it. They share the session on purpose: the Source's temp tables are
// what the Planner diffs, and the apply lock is held by this session.
//
// A Session is used by one thread at a time (sync::DbLane while a step runs).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <spdlog/logger.h>

#include "store/cdp_memory.hpp"
#include "store/connection.hpp"
#include "store/gauges.hpp"
#include "store/group_map.hpp"
#include "store/journal.hpp"
#include "store/mirror.hpp"
#include "store/planner.hpp"
#include "store/runs.hpp"
#include "store/schema.hpp"
#include "store/source.hpp"

namespace cdpsync::store {

struct Session {
    // Validates the schema name (std::invalid_argument) and connects (throws: see
    // classify_db_error).
    Session(const std::string& dsn, const std::string& schema, std::shared_ptr<spdlog::logger> log = nullptr);
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    const std::string& schema() const { return runs.schema(); }
    // migrate_schema on this session.
    int migrate();
    // The one-writer lock on this session; nullopt when another session holds it.
    std::optional<ApplyLock> lock_apply();

    std::shared_ptr<spdlog::logger> log;
    Connection conn;
    Runs runs;
    Source source;
    GroupMap groups;
    Mirror mirror;
    Planner planner;
    Journal journal;
    CdpMemory cdp;
    Gauges gauges;
};

}  // namespace cdpsync::store
