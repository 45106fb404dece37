// The cdp-sync subcommands. main.cpp builds one CLI11 app with the global options; each
// `add_*` below adds its subcommand (arguments, help text) to it and, when the subcommand is
// selected, sets `action` to the call that runs it with the arguments parsed once. The
// action prints to stdout/stderr and returns the exit code:
//   0 ok, 1 failed / not converged, 2 usage or configuration error, 3 delete guard,
//   4 another cdp-sync is applying (busy), 5 interrupted at a safe point.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace cdpsync::cli {

struct GlobalOptions {
    std::string config_path;  // --config; "" means $CDP_SYNC_CONFIG or /etc/cdp-sync/config.yaml
};

using Action = std::function<int()>;
// Adds one subcommand to `app`. `global` is filled by the parse and read when the action runs.
using AddCommand = void (*)(CLI::App& app, const GlobalOptions& global, Action& action);

void add_run_command(CLI::App& app, const GlobalOptions& global, Action& action);     // daemon_commands.cpp
void add_resync_command(CLI::App& app, const GlobalOptions& global, Action& action);  // daemon_commands.cpp
void add_status_command(CLI::App& app, const GlobalOptions& global, Action& action);  // daemon_commands.cpp
void add_retry_failed_command(CLI::App& app, const GlobalOptions& global, Action& action);  // daemon_commands.cpp
void add_check_command(CLI::App& app, const GlobalOptions& global, Action& action);   // daemon_commands.cpp
void add_plan_command(CLI::App& app, const GlobalOptions& global, Action& action);    // sync_commands.cpp
void add_api_command(CLI::App& app, const GlobalOptions& global, Action& action);     // api_command.cpp

// What `resync` and `run --once` ask of the engine (sync_commands.cpp runs it here).
struct EngineArgs {
    bool force = false;
    std::vector<std::string> only_groups;  // resync --group
};
int resync_here(const GlobalOptions& global, const EngineArgs& args);
int run_once_here(const GlobalOptions& global, const EngineArgs& args);

}  // namespace cdpsync::cli
