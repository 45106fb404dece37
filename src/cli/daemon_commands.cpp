// run (the daemon), status, check, and resync through a running daemon.
#include "cli/daemon_commands.hpp"

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>

#include "config/config.hpp"
#include "config/logging.hpp"
#include "daemon/check.hpp"
#include "daemon/daemon.hpp"
#include "daemon/resync_client.hpp"
#include "daemon/signals.hpp"
#include "daemon/status.hpp"

namespace cdpsync::cli {
namespace {

constexpr const char* kRunHelp =
    "usage: cdp-sync [--config FILE] run [--once [--force]]\n"
    "The service: an incremental sync every sync.poll_interval_s (at once on NOTIFY cdp_sync),\n"
    "a full resync every sync.full_resync_interval_h. One process leads (a PostgreSQL advisory\n"
    "lock); others wait as standbys and take over when it stops. Signals: TERM/INT stop, HUP\n"
    "reloads the config, USR1 asks for a full resync. Exit 0 after a stop, 2 config error.\n"
    "  --once   one incremental cycle and exit (see run --once --help)\n";

constexpr const char* kStatusHelp =
    "usage: cdp-sync [--config FILE] status [--json]\n"
    "The leader and its phase, recent runs, time since the last successful sync, open ops and\n"
    "their most common errors, queued resync requests. Exit 0, 1 when PostgreSQL is unreachable.\n";

constexpr const char* kRetryFailedHelp =
    "usage: cdp-sync [--config FILE] retry-failed\n"
    "Clears the backoff waits and permanent marks of the failed ops (see `status`), so the next\n"
    "run sends them. Exit 0, 1 when PostgreSQL is unreachable, 2 invalid configuration.\n";

constexpr const char* kCheckHelp =
    "usage: cdp-sync [--config FILE] check\n"
    "Validates the configuration, connects to PostgreSQL and tries the configured queries\n"
    "(without reading their rows), reads the token and calls the CDP once.\n"
    "Exit 0 all good, 1 a check failed, 2 invalid configuration.\n";

bool has(const Args& args, const char* flag) {
    for (const auto& a : args)
        if (a == flag) return true;
    return false;
}

}  // namespace

int daemon_run(const GlobalOptions& global, const Args& args) {
    if (has(args, "--once")) return run_command(global, args);
    for (const auto& a : args) {
        if (a == "-h" || a == "--help") {
            std::cout << kRunHelp;
            return 0;
        }
        std::cerr << "cdp-sync run: unexpected argument '" << a << "'\n" << kRunHelp;
        return 2;
    }
    daemon::block_daemon_signals();
    const auto path = config::default_path(global.config_path);
    config::Config cfg;
    try {
        cfg = config::load_file(path);
        // Under systemd with a log file, stderr would only duplicate the file in the journal.
        const bool under_systemd = std::getenv("NOTIFY_SOCKET") || std::getenv("JOURNAL_STREAM");
        logging::init(cfg.logging, cfg.logging.file.empty() || !under_systemd || ::isatty(2));
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync run: " << e.what() << std::endl;
        return 2;
    }
    daemon::DaemonOptions options;
    options.config_path = path;
    return daemon::run_daemon(std::move(cfg), options);
}

int resync_dispatch(const GlobalOptions& global, const Args& args) {
    daemon::ResyncAsk ask;
    for (size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--force") ask.force = true;
        else if (a == "--group" && i + 1 < args.size()) ask.only_groups.push_back(args[++i]);
        else if (a.rfind("--group=", 0) == 0) ask.only_groups.push_back(a.substr(8));
        else return resync_command(global, args);  // --help and usage errors are said there
    }
    std::optional<config::Config> cfg;
    try {
        cfg = config::load_file(config::default_path(global.config_path));
        ask.progress_bar = ::isatty(2);
        if (auto code = daemon::resync_through_daemon(*cfg, ask, std::cout, std::cerr)) return *code;
    } catch (const std::exception&) {
        // A bad config or an unreachable PostgreSQL: resync_command reports it in its words.
    }
    // No daemon: the engine runs here; on a terminal, a progress bar meanwhile.
    daemon::block_daemon_signals();  // the engine stops at a safe point on Ctrl-C
    std::optional<daemon::TerminalProgress> bar;
    if (cfg && ::isatty(2)) bar.emplace(*cfg, std::cerr);
    return resync_command(global, args);
}

int status_command(const GlobalOptions& global, const Args& args) {
    bool as_json = false;
    for (const auto& a : args) {
        if (a == "--json") {
            as_json = true;
        } else if (a == "-h" || a == "--help") {
            std::cout << kStatusHelp;
            return 0;
        } else {
            std::cerr << "cdp-sync status: unexpected argument '" << a << "'\n" << kStatusHelp;
            return 2;
        }
    }
    config::Config cfg;
    try {
        cfg = config::load_file(config::default_path(global.config_path));
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync status: " << e.what() << std::endl;
        return 2;
    }
    try {
        auto s = daemon::collect_status(cfg);
        if (as_json) std::cout << s.dump(2) << std::endl;
        else std::cout << daemon::status_text(s) << std::flush;
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync status: cannot read the status from PostgreSQL: " << e.what() << std::endl;
        return 1;
    }
}

int retry_failed_command(const GlobalOptions& global, const Args& args) {
    for (const auto& a : args) {
        if (a == "-h" || a == "--help") {
            std::cout << kRetryFailedHelp;
            return 0;
        }
        std::cerr << "cdp-sync retry-failed: unexpected argument '" << a << "'\n" << kRetryFailedHelp;
        return 2;
    }
    config::Config cfg;
    try {
        cfg = config::load_file(config::default_path(global.config_path));
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync retry-failed: " << e.what() << std::endl;
        return 2;
    }
    try {
        const int64_t n = daemon::retry_failed_now(cfg);
        std::cout << n << " failed op(s) will be sent on the next run\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync retry-failed: " << e.what() << std::endl;
        return 1;
    }
}

int check_command(const GlobalOptions& global, const Args& args) {
    for (const auto& a : args) {
        if (a == "-h" || a == "--help") {
            std::cout << kCheckHelp;
            return 0;
        }
        std::cerr << "cdp-sync check: unexpected argument '" << a << "'\n" << kCheckHelp;
        return 2;
    }
    logging::init_stderr("warn");
    return daemon::run_checks(config::default_path(global.config_path), std::cout);
}

}  // namespace cdpsync::cli
