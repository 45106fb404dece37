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

#include <utility>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "cli/cli_app.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "config/logging.hpp"
#include "daemon/metrics.hpp"
#include "daemon/resync_client.hpp"
#include "daemon/signals.hpp"
#include "store/session.hpp"
#include "sync/engine.hpp"

namespace cdpsync::cli {
namespace {

namespace net = boost::asio;

std::optional<config::Config> load(const GlobalOptions& global, const char* command) {
    return load_config_or_usage(global, command, ErrorLines::as_is,
                                [](const config::Config& cfg) { logging::init(cfg.logging); });
}

// After a stop signal the run has this long to reach a safe point before the process exits.
constexpr std::chrono::seconds kStopGrace{30};

[[noreturn]] void exit_interrupted(const std::shared_ptr<spdlog::logger>& log) {
    log->warn("exiting now; the run stays in the journal and the next run resumes it");
    log->flush();
    std::_Exit(static_cast<int>(sync::RunStatus::interrupted));
}

// Runs `work` on a worker thread while this thread's event loop takes the signals. The first
// SIGINT/SIGTERM sets the flag `work` was given (the run stops at its next safe point); a
// second one, or the run still going kStopGrace later, exits at once with code 5 (the run
// stays in the journal; the next run resumes it). Rethrows what `work` threw.
void run_stoppable(const std::shared_ptr<spdlog::logger>& log,
                   const std::function<void(const std::atomic<bool>& stop)>& work) {
    net::io_context loop;
    net::steady_timer grace(loop);
    std::atomic<bool> stop{false};
    auto on_stop = [&](bool again) {
        if (again) exit_interrupted(log);
        stop = true;
        log->info("the run in progress stops at its next safe point (calls in flight answered; bounded)");
        grace.expires_after(kStopGrace);
        grace.async_wait([&](const boost::system::error_code& ec) {
            if (ec) return;
            log->warn("the run did not end within {} s of the stop signal", kStopGrace.count());
            exit_interrupted(log);
        });
    };
    daemon::LoopSignals signals(loop.get_executor(), log, daemon::SignalHandlers{on_stop, {}, {}});
    std::exception_ptr failure;
    net::thread_pool worker(1);  // started while the signals are blocked: only the loop takes them
    net::post(worker, [&] {
        try {
            work(stop);
        } catch (...) {
            failure = std::current_exception();
        }
        net::post(loop, [&] {
            signals.cancel();
            grace.cancel();
        });
    });
    daemon::unblock_daemon_signals();
    loop.run();
    daemon::block_daemon_signals();  // a late signal waits, as before the run, instead of killing
    worker.join();
    if (failure) std::rethrow_exception(failure);
}

int run_engine(const GlobalOptions& global, const char* command, sync::RunRequest request) {
    daemon::block_daemon_signals();  // before logging starts its threads
    auto cfg = load(global, command);
    if (!cfg) return kExitUsage;
    try {
        auto log = logging::logger("sync");
        std::optional<sync::RunReport> report;
        run_stoppable(log, [&](const std::atomic<bool>& stop) {
            request.stop = &stop;
            sync::Engine engine(*cfg, log);
            report = engine.run(request);
            daemon::write_run_metrics(*cfg, engine, *report);
        });
        std::cout << report->to_text() << std::flush;
        return report->exit_code();
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
