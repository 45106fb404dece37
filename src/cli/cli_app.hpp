// CLI11 set-up shared by cdp-sync's commands: help that starts with "Usage:", usage errors
// as one line on stderr with exit 2, and a command group (api, api groups) that prints its
// help to stderr and exits 2 when no subcommand follows (main.cpp).
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "config/config.hpp"

namespace cdpsync::cli {

inline constexpr int kExitUsage = 2;

// "Usage: ..." first, then the description, options and subcommands.
class UsageFirstFormatter : public CLI::Formatter {
public:
    std::string make_help(const CLI::App* app, std::string name, CLI::AppFormatMode mode) const override;
};

// Adds subcommand `name`: `summary` is its line in the parent's --help, `help` the text
// after its options in its own.
CLI::App& add_command(CLI::App& parent, const char* name, const char* summary, const char* help);

// When `command` is selected, `action` becomes run(global, *args): the returned arguments,
// filled by the parse (bind the options to them), reach the command once the parse succeeded.
template <class Args>
std::shared_ptr<Args> run_when_selected(CLI::App& command, const GlobalOptions& global, Action& action,
                                        int (*run)(const GlobalOptions&, const Args&)) {
    auto args = std::make_shared<Args>();
    command.callback([&action, &global, args, run] { action = [&global, args, run] { return run(global, *args); }; });
    return args;
}

// Parses argv into `app`. Returns the exit code when parsing ends the process (help,
// version: 0; usage error: 2, said in one line naming the command), else -1.
int parse_command_line(CLI::App& app, int argc, const char* const* argv);

// "cdp-sync api groups create": the root app and the subcommands the parse selected.
std::string selected_path(const CLI::App& root);
// The help of the deepest subcommand the parse selected (of `root` when none).
std::string selected_help(const CLI::App& root);

// How a configuration error is printed: as the loader says it (one line per problem), or on
// one line (the api commands, whose every failure is one line).
enum class ErrorLines { as_is, one_line };

// The configuration (--config, else $CDP_SYNC_CONFIG, else the default path), with
// `set_up` (logging, say) run on it. On failure of either it says "cdp-sync <command>: <why>"
// on stderr and returns nothing: the command then exits kExitUsage.
std::optional<config::Config> load_config_or_usage(const GlobalOptions& global, const char* command,
                                                   ErrorLines lines = ErrorLines::as_is,
                                                   const std::function<void(const config::Config&)>& set_up = {});

}  // namespace cdpsync::cli
