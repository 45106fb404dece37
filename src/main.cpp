// cdp-sync: parse the global options, then hand the rest to one subcommand (cli/commands.hpp).
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/daemon_commands.hpp"

namespace {

constexpr const char* kVersion = "0.1.0";

using Command = int (*)(const cdpsync::cli::GlobalOptions&, const cdpsync::cli::Args&);

struct Subcommand {
    const char* name;
    Command run;  // nullptr: not implemented yet
    const char* summary;
};

const Subcommand kSubcommands[] = {
    {"run", cdpsync::cli::daemon_run, "daemon: poll, sync changes, periodic full resync (--once: one cycle)"},
    {"resync", cdpsync::cli::resync_dispatch, "one-off full resync, exit 0 when converged"},
    {"plan", cdpsync::cli::plan_command, "dry run: print what a sync would do, change nothing"},
    {"status", cdpsync::cli::status_command, "last runs, pending/failed ops, checkpoint, lag"},
    {"retry-failed", cdpsync::cli::retry_failed_command, "send failed ops on the next run (clears backoff waits)"},
    {"check", cdpsync::cli::check_command, "validate config, reach PostgreSQL and the CDP"},
    {"api", cdpsync::cli::api_command, "one call per CDP endpoint, JSON out (see api --help)"},
};

void usage(std::ostream& os) {
    os << "Usage: cdp-sync [--config FILE] COMMAND [ARGS...]\n"
          "       cdp-sync --help | --version\n\n"
          "Keeps the customer groups of the CDP equal to what PostgreSQL says.\n\n"
          "Options:\n"
          "  --config FILE   configuration file (default: $CDP_SYNC_CONFIG, else /etc/cdp-sync/config.yaml)\n"
          "  --help          this help\n"
          "  --version       print the version\n\n"
          "Commands:\n";
    for (const auto& c : kSubcommands) {
        std::string name = c.name;
        name.resize(10, ' ');
        os << "  " << name << c.summary << "\n";
    }
    os << "\nRun 'cdp-sync COMMAND --help' for the arguments of a command.\n";
}

}  // namespace

int main(int argc, char** argv) {
    cdpsync::cli::GlobalOptions global;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(std::cout);
            return 0;
        }
        if (a == "--version") {
            std::cout << "cdp-sync " << kVersion << "\n";
            return 0;
        }
        if (a == "--config") {
            if (i + 1 >= argc) {
                std::cerr << "cdp-sync: --config needs a FILE\n";
                return 2;
            }
            global.config_path = argv[++i];
        } else if (a.rfind("--config=", 0) == 0) {
            global.config_path = a.substr(std::strlen("--config="));
        } else {
            std::cerr << "cdp-sync: unknown option " << a << " (see cdp-sync --help)\n";
            return 2;
        }
    }
    if (i >= argc) {
        usage(std::cerr);
        return 2;
    }
    const std::string name = argv[i];
    const cdpsync::cli::Args args(argv + i + 1, argv + argc);
    for (const auto& c : kSubcommands) {
        if (name != c.name) continue;
        if (!c.run) {
            std::cerr << "cdp-sync " << name << ": not implemented yet\n";
            return 2;
        }
        try {
            return c.run(global, args);
        } catch (const std::exception& e) {
            std::cerr << "cdp-sync " << name << ": " << e.what() << "\n";
            return 1;
        }
    }
    std::cerr << "cdp-sync: unknown command '" << name << "' (see cdp-sync --help)\n";
    return 2;
}
