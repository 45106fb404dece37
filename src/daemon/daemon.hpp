// `cdp-sync run`: the service. One process is the leader (it holds the leader lock in
// PostgreSQL, see control.hpp) and runs the sync engine; any other waits as a standby and
// takes over within min(poll interval, 5 s) of the leader's death.
//
// | what                    | when                                                          |
// |-------------------------|---------------------------------------------------------------|
// | incremental run         | every sync.poll_interval_s; at once on NOTIFY cdp_sync (payload |
// |                         | empty or the schema name); skipped while database.change_query|
// |                         | returns what it returned last time                            |
// | full resync             | every sync.full_resync_interval_h (first: one interval after  |
// |                         | the last successful one, at once if there never was one), on  |
// |                         | SIGUSR1, and for each queued `cdp-sync resync` request          |
// | failures                | PostgreSQL down, CDP down, failed runs: waited out with        |
// |                         | backoff, logged once per change of state; never an exit        |
// | SIGTERM / SIGINT        | no new run; a run in progress gets `stop_grace`; exit 0        |
// | SIGHUP                  | reload the config file (log level, rate limit, intervals,      |
// |                         | queries); an invalid file is logged and the old one kept       |
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>

#include <spdlog/logger.h>

#include "config/config.hpp"

namespace cdpsync::daemon {

struct DaemonOptions {
    std::filesystem::path config_path;             // re-read on SIGHUP
    std::chrono::milliseconds stop_grace{25000};   // below systemd's TimeoutStopSec=90s
    std::shared_ptr<spdlog::logger> log;           // null: logging::logger("daemon")
};

// Runs until a stop signal; returns the process exit code (0 after a clean stop).
int run_daemon(config::Config config, const DaemonOptions& options);

}  // namespace cdpsync::daemon
