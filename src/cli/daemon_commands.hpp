// The service's subcommands (cli/daemon_commands.cpp): run, status, check, and the resync
// front door that hands the work to a running daemon when there is one.
#pragma once

#include "cli/commands.hpp"

namespace cdpsync::cli {

// `run`: the daemon. `run --once` is handed to run_command (cli/sync_commands.cpp).
int daemon_run(const GlobalOptions& global, const Args& args);
// `resync`: when a daemon leads the schema, asks it and waits for the outcome; otherwise
// (and for --help) hands over to resync_command, which runs the engine here.
int resync_dispatch(const GlobalOptions& global, const Args& args);
// `status [--json]`
int status_command(const GlobalOptions& global, const Args& args);
int retry_failed_command(const GlobalOptions& global, const Args& args);
// `check`
int check_command(const GlobalOptions& global, const Args& args);

}  // namespace cdpsync::cli
