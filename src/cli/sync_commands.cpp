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

#include "cli/cli_app.hpp"
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
    if (!cfg) return kExitUsage;
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

struct PlanArgs {
    sync::PlanRequest request;
    std::string format = "text";
};

int plan_command(const GlobalOptions& global, const PlanArgs& args) {
    const auto& request = args.request;
    auto cfg = load(global, "plan");
    if (!cfg) return kExitUsage;
    try {
        sync::Engine engine(*cfg, logging::logger("sync"));
        std::optional<daemon::TerminalProgress> bar;
        if (request.full && ::isatty(2)) bar.emplace(*cfg, std::cerr, sync::plan_snapshot_id());
        auto report = engine.plan(request);
        bar.reset();
        if (args.format == "json") std::cout << report.to_json().dump(2) << std::endl;
        else std::cout << report.to_text() << std::flush;
        return report.error.empty() ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync plan: " << e.what() << std::endl;
        return 1;
    }
}

}  // namespace

int resync_here(const GlobalOptions& global, const EngineArgs& args) {
    sync::RunRequest request;
    request.kind = sync::RunKind::full;
    request.force = args.force;
    request.only_groups = args.only_groups;
    return run_engine(global, "resync", request);
}

int run_once_here(const GlobalOptions& global, const EngineArgs& args) {
    sync::RunRequest request;
    request.kind = sync::RunKind::incremental;
    request.force = args.force;
    return run_engine(global, "run", request);
}

void add_plan_command(CLI::App& app, const GlobalOptions& global, Action& action) {
    CLI::App& plan = add_command(
        app, "plan", "dry run: print what a sync would do, change nothing",
        "Print what a sync would do (totals, per-group adds/removes, samples, calls), sending no\n"
        "writes to the CDP. Without --full the diff is against the mirror (like run --once);\n"
        "--full first refreshes the mirror from the CDP (like resync).\n"
        "Exit: 0 plan printed, 1 no plan could be made, 2 usage/config.");
    auto args = run_when_selected<PlanArgs>(plan, global, action, plan_command);
    plan.add_flag("--full", args->request.full, "refresh the mirror from the CDP first");
    plan.add_option("--format", args->format, "output format (default text)")
        ->type_name("text|json")
        ->check(CLI::IsMember({"text", "json"}).description(""));
    plan.add_option("--group", args->request.only_groups, "only this group (repeatable)")->type_name("NAME");
}

}  // namespace cdpsync::cli
