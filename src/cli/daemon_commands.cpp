// run (the daemon), status, check, and resync through a running daemon.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/cli_app.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "config/logging.hpp"
#include "daemon/check.hpp"
#include "daemon/daemon.hpp"
#include "daemon/resync_client.hpp"
#include "daemon/signals.hpp"
#include "daemon/status.hpp"

namespace cdpsync::cli {
namespace {

int daemon_run(const GlobalOptions& global) {
    daemon::block_daemon_signals();
    auto cfg = load_config_or_usage(global, "run", ErrorLines::as_is, [](const config::Config& loaded) {
        // stderr is on where someone reads it: a terminal, no log file, or the journal (whose
        // lines carry their priority, so `journalctl -p err` works). Elsewhere under systemd
        // (stderr to a file or null) it would only duplicate the log file.
        const bool under_systemd = std::getenv("NOTIFY_SOCKET") || std::getenv("JOURNAL_STREAM");
        logging::init(loaded.logging, loaded.logging.file.empty() || !under_systemd || ::isatty(2) ||
                                          logging::stderr_is_journal());
    });
    if (!cfg) return kExitUsage;
    daemon::DaemonOptions options;
    options.config_path = config::default_path(global.config_path);
    return daemon::run_daemon(std::move(*cfg), options);
}

// When a daemon leads the schema, asks it and waits for the outcome; when none does (or it
// could not be asked), runs the engine here. A request the daemon may still run is never
// run here as well.
int resync_dispatch(const GlobalOptions& global, const EngineArgs& args) {
    const auto loaded = load_config_or_usage(global, "resync");
    if (!loaded) return kExitUsage;
    const config::Config& cfg = *loaded;
    const daemon::ResyncAsk ask{args.force, args.only_groups, static_cast<bool>(::isatty(2))};
    const auto handed = daemon::resync_through_daemon(cfg, ask, std::cout, std::cerr);
    switch (handed.kind) {
    case daemon::DaemonResync::Kind::finished:
        return handed.exit_code;
    case daemon::DaemonResync::Kind::lost:
        std::cerr << "cdp-sync resync: " << handed.error << std::endl;
        return 1;
    case daemon::DaemonResync::Kind::not_queued:
        break;
    }
    if (!handed.error.empty())
        std::cerr << "cdp-sync resync: " << handed.error << "; doing the resync here" << std::endl;
    // The engine runs here; on a terminal, a progress bar meanwhile.
    daemon::block_daemon_signals();  // the engine stops at a safe point on Ctrl-C
    std::optional<daemon::TerminalProgress> bar;
    if (::isatty(2)) bar.emplace(cfg, std::cerr);
    return resync_here(global, args);
}

struct RunArgs {
    bool once = false;
    EngineArgs engine;  // --force (with --once)
};

int run_command(const GlobalOptions& global, const RunArgs& args) {
    return args.once ? run_once_here(global, args.engine) : daemon_run(global);
}

struct StatusArgs {
    bool as_json = false;
};

int status_command(const GlobalOptions& global, const StatusArgs& args) {
    const auto loaded = load_config_or_usage(global, "status");
    if (!loaded) return kExitUsage;
    const config::Config& cfg = *loaded;
    try {
        auto s = daemon::collect_status(cfg);
        if (args.as_json) std::cout << s.dump(2) << std::endl;
        else std::cout << daemon::status_text(s) << std::flush;
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync status: cannot read the status from PostgreSQL: " << e.what() << std::endl;
        return 1;
    }
}

struct NoArgs {};

int retry_failed_command(const GlobalOptions& global, const NoArgs&) {
    const auto loaded = load_config_or_usage(global, "retry-failed");
    if (!loaded) return kExitUsage;
    const config::Config& cfg = *loaded;
    try {
        const int64_t n = daemon::retry_failed_now(cfg);
        std::cout << n << " failed op(s) will be sent on the next run\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync retry-failed: " << e.what() << std::endl;
        return 1;
    }
}

int check_command(const GlobalOptions& global, const NoArgs&) {
    logging::init_stderr("warn");
    return daemon::run_checks(config::default_path(global.config_path), std::cout);
}

}  // namespace

void add_run_command(CLI::App& app, const GlobalOptions& global, Action& action) {
    CLI::App& run = add_command(
        app, "run", "daemon: poll, sync changes, periodic full resync (--once: one cycle)",
        "The service: an incremental sync every sync.poll_interval_s (at once on NOTIFY cdp_sync),\n"
        "a full resync every sync.full_resync_interval_h. One process leads (a PostgreSQL advisory\n"
        "lock); others wait as standbys and take over when it stops. Signals: TERM/INT stop, HUP\n"
        "reloads the config, USR1 asks for a full resync. Exit 0 after a stop, 2 config error.\n"
        "With --once: one incremental cycle (diff against the mirror; only groups whose CDP count\n"
        "drifted are read again), apply, exit with the codes of resync.");
    auto args = run_when_selected<RunArgs>(run, global, action, run_command);
    auto* once = run.add_flag("--once", args->once, "one incremental cycle and exit");
    run.add_flag("--force", args->engine.force, "with --once: pass the delete guard (sync.max_deletes)")->needs(once);
}

void add_resync_command(CLI::App& app, const GlobalOptions& global, Action& action) {
    CLI::App& resync = add_command(
        app, "resync", "one-off full resync, exit 0 when converged",
        "Full resync: refresh the mirror of every managed group from the CDP, diff against the\n"
        "desired query, apply. Continues an interrupted run first. When a daemon leads the schema,\n"
        "it runs the resync and this command waits for its outcome.\n"
        "Exit: 0 converged, 1 not converged, 2 usage/config, 3 stopped by the delete guard,\n"
        "      4 another cdp-sync is applying to this schema (no waiting), 5 interrupted.\n"
        "Ctrl-C (or SIGTERM) stops at a safe point and records the run as interrupted; the next\n"
        "resync or run continues it. A second Ctrl-C exits at once (the run is resumed all the same).");
    auto args = run_when_selected<EngineArgs>(resync, global, action, resync_dispatch);
    resync.add_flag("--force", args->force, "pass the delete guard (sync.max_deletes)");
    resync.add_option("--group", args->only_groups, "only this group (repeatable)")->type_name("NAME");
}

void add_status_command(CLI::App& app, const GlobalOptions& global, Action& action) {
    CLI::App& status = add_command(
        app, "status", "last runs, pending/failed ops, checkpoint, lag",
        "The leader and its phase, recent runs, time since the last successful sync, open ops and\n"
        "their most common errors, queued resync requests. Exit 0, 1 when PostgreSQL is unreachable.");
    auto args = run_when_selected<StatusArgs>(status, global, action, status_command);
    status.add_flag("--json", args->as_json, "print JSON");
}

void add_retry_failed_command(CLI::App& app, const GlobalOptions& global, Action& action) {
    CLI::App& retry = add_command(
        app, "retry-failed", "send failed ops on the next run (clears backoff waits)",
        "Clears the backoff waits and permanent marks of the failed ops (see `status`), so the next\n"
        "run sends them. Exit 0, 1 when PostgreSQL is unreachable, 2 invalid configuration.");
    run_when_selected<NoArgs>(retry, global, action, retry_failed_command);
}

void add_check_command(CLI::App& app, const GlobalOptions& global, Action& action) {
    CLI::App& check = add_command(
        app, "check", "validate config, reach PostgreSQL and the CDP",
        "Validates the configuration, connects to PostgreSQL and prepares the configured queries\n"
        "as a run does (without reading their rows), reads the token and calls the CDP once.\n"
        "Exit 0 all good, 1 a check failed, 2 invalid configuration.");
    run_when_selected<NoArgs>(check, global, action, check_command);
}

}  // namespace cdpsync::cli
