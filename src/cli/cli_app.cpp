#include "cli/cli_app.hpp"

#include <iostream>
#include <sstream>

#include "config/text.hpp"

namespace cdpsync::cli {
namespace {

const CLI::App& deepest_selected(const CLI::App& app) {
    const auto subs = app.get_subcommands();
    return subs.empty() ? app : deepest_selected(*subs.front());
}

std::string path_of(const CLI::App& app) {
    return app.get_parent() ? path_of(*app.get_parent()) + " " + app.get_name() : app.get_name();
}

}  // namespace

std::string selected_path(const CLI::App& root) { return path_of(deepest_selected(root)); }

std::string selected_help(const CLI::App& root) {
    const CLI::App& at = deepest_selected(root);
    return at.help(at.get_parent() ? path_of(*at.get_parent()) : "");
}

std::string UsageFirstFormatter::make_help(const CLI::App* app, std::string name, CLI::AppFormatMode mode) const {
    if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
    std::ostringstream out;
    out << make_usage(app, name) << "\n";
    out << make_description(app);
    out << make_positionals(app);
    out << make_groups(app, mode);
    out << make_subcommands(app, mode);
    out << "\n" << make_footer(app);
    return out.str();
}

CLI::App& add_command(CLI::App& parent, const char* name, const char* summary, const char* help) {
    CLI::App* command = parent.add_subcommand(name, summary);
    command->footer(help);
    return *command;
}

std::optional<config::Config> load_config_or_usage(const GlobalOptions& global, const char* command,
                                                   ErrorLines lines,
                                                   const std::function<void(const config::Config&)>& set_up) {
    try {
        auto cfg = config::load_file(config::default_path(global.config_path));
        if (set_up) set_up(cfg);
        return cfg;
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync " << command << ": "
                  << (lines == ErrorLines::one_line ? text::one_line(e.what()) : std::string(e.what())) << std::endl;
        return std::nullopt;
    }
}

int parse_command_line(CLI::App& app, int argc, const char* const* argv) {
    try {
        app.parse(argc, argv);
        return -1;
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        return 0;
    } catch (const CLI::CallForVersion& e) {
        std::cout << e.what() << std::endl;
        return 0;
    } catch (const CLI::ParseError& e) {
        const std::string path = selected_path(app);
        std::cerr << path << ": " << text::one_line(e.what()) << " (see " << path << " --help)" << std::endl;
        return kExitUsage;
    }
}

}  // namespace cdpsync::cli
