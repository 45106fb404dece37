// cdp-sync: the global options, then one subcommand (cli/commands.hpp), parsed by CLI11.
#include <exception>
#include <iostream>
#include <memory>
#include <string>

#include "cli/cli_app.hpp"
#include "cli/commands.hpp"

namespace {

using namespace cdpsync::cli;

constexpr const char* kVersion = "0.1.0";

// Every subcommand, in the order --help lists them.
constexpr AddCommand kCommands[] = {
    add_run_command, add_resync_command, add_plan_command, add_status_command, add_retry_failed_command,
    add_check_command, add_api_command,
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app("Keeps the customer groups of the CDP equal to what PostgreSQL says.", "cdp-sync");
    app.formatter(std::make_shared<UsageFirstFormatter>());
    app.set_version_flag("--version", std::string("cdp-sync ") + kVersion);
    GlobalOptions global;
    app.add_option("--config", global.config_path,
                   "configuration file (default: $CDP_SYNC_CONFIG, else /etc/cdp-sync/config.yaml)")
        ->type_name("FILE");
    Action action;
    for (const AddCommand add : kCommands) add(app, global, action);
    app.footer("Run 'cdp-sync COMMAND --help' for the arguments of a command.");  // after: not inherited

    if (const int code = parse_command_line(app, argc, argv); code >= 0) return code;
    if (!action) {
        std::cerr << selected_help(app) << std::flush;  // a command group without its subcommand
        return kExitUsage;
    }
    try {
        return action();
    } catch (const std::exception& e) {
        std::cerr << selected_path(app) << ": " << e.what() << std::endl;
        return 1;
    }
}
