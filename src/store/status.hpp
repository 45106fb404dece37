// Read-only figures about a cdp_sync schema, from any connection and whether or not a daemon
// runs: the run in progress (progress bars, the daemon's monitor) and what `cdp-sync status`
// shows. A table an older release did not have yet reads as empty.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "store/connection.hpp"
#include "store/control.hpp"
#include "store/runs.hpp"

namespace cdpsync::store {

// The run in progress (status 'running', newest), read from outside the engine: its phase
// and, in the apply phase, how many of its ops are settled.
struct RunProgress {
    int64_t run_id = 0;
    std::string mode;
    std::string phase;
    double seconds = 0;        // since the run started
    int64_t done = 0, total = 0;                      // ops, while applying
    int64_t pages = 0, groups_done = 0, groups_total = 0;  // member pages, while snapshotting
};
std::optional<RunProgress> running_run(Connection& conn, const std::string& schema);
// The snapshot `plan --full` makes outside any run (see sync::plan_snapshot_id).
std::optional<RunProgress> snapshot_progress(Connection& conn, const std::string& schema, int64_t snapshot_id);

// Seconds since the last successful run (only full ones with `full_only`), nullopt when
// there never was one.
std::optional<double> seconds_since_success(Connection& conn, const std::string& schema, bool full_only);

struct StatusFigures {
    std::optional<LeaderInfo> leader;
    // The schema's migration version (0: none yet). Older than kSchemaVersion: only the
    // leader is read (the tables lack columns this release reads); a run migrates it.
    int schema_version = 0;
    bool has_runs = false;  // the run table exists
    std::vector<RunRow> runs;  // newest first
    std::optional<double> last_success_s, last_full_success_s;
    bool has_ops = false;   // the op table exists
    std::map<std::string, int64_t> open_ops;  // pending, failed, permanent
    struct ErrorGroup {
        std::string msg, state;
        std::optional<int> http_status, cdp_code;
        int64_t count = 0, example_customer = 0;
    };
    std::vector<ErrorGroup> top_errors;  // failed/permanent ops by message, most common first
    struct Waiting {
        std::string state, msg;
        int64_t count = 0;
        double next_in_s = 0;
    };
    std::vector<Waiting> waiting;  // failed/permanent ops whose next attempt is ahead
    struct BreakerRow {
        std::string state, reason, since;
        std::optional<int> max_groups_per_call;
    };
    std::optional<BreakerRow> breaker;
    int64_t resync_queued = 0, resync_running = 0;
};
StatusFigures read_status(Connection& conn, const std::string& schema, int runs);

// What `check` learns of the server: version, user, database, and whether the user can
// create the schema's tables.
struct ServerFacts {
    std::string version, user, database;
    bool schema_exists = false;
    bool can_create = false;  // in the schema, or the database when the schema does not exist
};
ServerFacts server_facts(Connection& conn, const std::string& schema);

}  // namespace cdpsync::store
