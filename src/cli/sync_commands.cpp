// resync, plan and run: argument parsing, config and logging set-up, then the sync engine.
//
// Exit codes (resync, run --once):
//   0  the CDP matches the database (every planned op confirmed, no group errors)
//   1  the run failed or did not converge (summary on stdout, details in the log)
//   2  usage or configuration error
//   3  the delete guard stopped the run before any write (rerun with --force)
//   4  another cdp-sync holds the apply lock for this schema (it does not wait)
//   5  stopped by SIGINT/SIGTERM at a safe point; the next run resumes it
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "config/logging.hpp"
#include "daemon/metrics.hpp"
#include "daemon/resync_client.hpp"
#include "daemon/signals.hpp"
#include "store/store.hpp"
#include "sync/engine.hpp"

namespace cdpsync::cli {
namespace {

constexpr const char* kResyncHelp =
    "usage: cdp-sync [--config FILE] resync [--force] [--group NAME]...\n"
    "Full resync: refresh the mirror of every managed group from the CDP, diff against the\n"
    "desired query, apply. Continues an interrupted run first.\n"
    "  --force        pass the delete guard (sync.max_deletes)\n"
    "  --group NAME   only this group (repeatable)\n"
    "Exit: 0 converged, 1 not converged, 2 usage/config, 3 stopped by the delete guard,\n"
    "      4 another cdp-sync is applying to this schema (no waiting), 5 interrupted.\n"
    "Ctrl-C (or SIGTERM) stops at a safe point and records the run as interrupted; the next\n"
    "resync or run continues it. A second Ctrl-C exits at once (the run is resumed all the same).\n";

constexpr const char* kPlanHelp =
    "usage: cdp-sync [--config FILE] plan [--full] [--format text|json] [--group NAME]...\n"
    "Print what a sync would do (totals, per-group adds/removes, samples, calls), sending no\n"
    "writes to the CDP. Without --full the diff is against the mirror (like run --once);\n"
    "--full first refreshes the mirror from the CDP (like resync).\n"
    "Exit: 0 plan printed, 1 no plan could be made, 2 usage/config.\n";

constexpr const char* kRunHelp =
    "usage: cdp-sync [--config FILE] run --once [--force]\n"
    "One incremental cycle: diff against the mirror (no member-list reads), apply, exit.\n"
    "Exit codes as for resync.\n";


std::optional<config::Config> load(const GlobalOptions& global, const char* command) {
    try {
        auto cfg = config::load_file(config::default_path(global.config_path));
        logging::init(cfg.logging);
        return cfg;
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync " << command << ": " << e.what() << std::endl;
        return std::nullopt;
    }
}

int run_engine(const GlobalOptions& global, const char* command, sync::RunRequest request) {
    daemon::block_daemon_signals();  // before logging starts its threads
    auto cfg = load(global, command);
    if (!cfg) return 2;
    try {
        auto log = logging::logger("sync");
        daemon::SignalWatcher signals(log, std::chrono::seconds(30), [log] {
            log->warn("exiting now; the run stays in the journal and the next run resumes it");
            log->flush();
            std::_Exit(5);
        });
        signals.set_busy(true);
        request.stop = &signals.stop_flag();
        sync::Engine engine(*cfg, log);
        auto report = engine.run(request);
        daemon::write_run_metrics(*cfg, engine, report);
        std::cout << report.to_text() << std::flush;
        return report.exit_code();
    } catch (const std::exception& e) {
        logging::logger("sync")->error("{} stopped: {}", command, e.what());
        std::cerr << "cdp-sync " << command << ": " << e.what() << std::endl;
        return 1;
    }
}

}  // namespace

int resync_command(const GlobalOptions& global, const Args& args) {
    sync::RunRequest request;
    request.kind = sync::RunKind::full;
    for (size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--force") {
            request.force = true;
        } else if (a == "--group" && i + 1 < args.size()) {
            request.only_groups.push_back(args[++i]);
        } else if (a.rfind("--group=", 0) == 0) {
            request.only_groups.push_back(a.substr(8));
        } else if (a == "-h" || a == "--help") {
            std::cout << kResyncHelp;
            return 0;
        } else {
            std::cerr << "cdp-sync resync: unexpected argument '" << a << "'\n" << kResyncHelp;
            return 2;
        }
    }
    return run_engine(global, "resync", request);
}

int run_command(const GlobalOptions& global, const Args& args) {
    sync::RunRequest request;
    request.kind = sync::RunKind::incremental;
    bool once = false;
    for (const auto& a : args) {
        if (a == "--once") {
            once = true;
        } else if (a == "--force") {
            request.force = true;
        } else if (a == "-h" || a == "--help") {
            std::cout << kRunHelp;
            return 0;
        } else {
            std::cerr << "cdp-sync run: unexpected argument '" << a << "'\n" << kRunHelp;
            return 2;
        }
    }
    if (!once) {
        std::cerr << "cdp-sync run: the daemon loop is not implemented yet; use run --once\n";
        return 2;
    }
    return run_engine(global, "run", request);
}

int plan_command(const GlobalOptions& global, const Args& args) {
    sync::PlanRequest request;
    bool as_json = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        std::string format;
        if (a == "--full") {
            request.full = true;
        } else if (a == "--format" && i + 1 < args.size()) {
            format = args[++i];
        } else if (a.rfind("--format=", 0) == 0) {
            format = a.substr(9);
        } else if (a == "--group" && i + 1 < args.size()) {
            request.only_groups.push_back(args[++i]);
        } else if (a == "-h" || a == "--help") {
            std::cout << kPlanHelp;
            return 0;
        } else {
            std::cerr << "cdp-sync plan: unexpected argument '" << a << "'\n" << kPlanHelp;
            return 2;
        }
        if (!format.empty()) {
            if (format != "text" && format != "json") {
                std::cerr << "cdp-sync plan: --format is text or json, not '" << format << "'\n";
                return 2;
            }
            as_json = format == "json";
        }
    }
    auto cfg = load(global, "plan");
    if (!cfg) return 2;
    try {
        sync::Engine engine(*cfg, logging::logger("sync"));
        std::optional<daemon::TerminalProgress> bar;
        if (request.full && ::isatty(2)) bar.emplace(*cfg, std::cerr, sync::plan_snapshot_id());
        auto report = engine.plan(request);
        bar.reset();
        if (as_json) std::cout << report.to_json().dump(2) << std::endl;
        else std::cout << report.to_text() << std::flush;
        return report.error.empty() ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync plan: " << e.what() << std::endl;
        return 1;
    }
}

}  // namespace cdpsync::cli
