// The cdp-sync subcommands. main.cpp parses the global options and dispatches here; each
// command parses its own arguments, prints to stdout/stderr and returns the exit code.
#pragma once

#include <string>
#include <vector>

namespace cdpsync::cli {

struct GlobalOptions {
    std::string config_path;  // --config; "" means $CDP_SYNC_CONFIG or /etc/cdp-sync/config.yaml
};

using Args = std::vector<std::string>;  // the arguments after the subcommand name

int api_command(const GlobalOptions& global, const Args& args);     // cli/api_command.cpp
int resync_command(const GlobalOptions& global, const Args& args);  // cli/sync_commands.cpp
int plan_command(const GlobalOptions& global, const Args& args);    // cli/sync_commands.cpp
int run_command(const GlobalOptions& global, const Args& args);     // cli/sync_commands.cpp

}  // namespace cdpsync::cli
