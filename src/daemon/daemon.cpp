#include "daemon/daemon.hpp"

#include <signal.h>
#include <unistd.h>

#include <utility>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <optional>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "cdp/api.hpp"
#include "config/logging.hpp"
#include "config/text.hpp"
#include "daemon/metrics.hpp"
#include "daemon/metrics_server.hpp"
#include "daemon/notify.hpp"
#include "daemon/run_monitor.hpp"
#include "daemon/schedule.hpp"
#include "daemon/signals.hpp"
#include "store/control.hpp"
#include "store/status.hpp"
#include "store/session.hpp"
#include "sync/engine.hpp"

namespace cdpsync::daemon {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

Duration poll_period(const config::Config& c) { return std::chrono::seconds(c.sync.poll_interval_s); }
Duration full_period(const config::Config& c) {
    return Duration(static_cast<int64_t>(c.sync.full_resync_interval_h * 3600.0 * 1000.0));
}
// A standby tries for the lock this often.
Duration standby_period(const config::Config& c) { return std::min<Duration>(poll_period(c), 5s); }
// The most a failing thing waits before its next attempt.
Duration max_backoff(const config::Config& c) { return std::max<Duration>(poll_period(c), 60s); }

// Long runs log their progress this often.
constexpr Duration kProgressEvery = 5s;
// After a stop signal, calls in flight get this long to be answered (and recorded) before
// the engine's calls and retry sleeps are cancelled; their ops stay pending.
constexpr Duration kDrainBeforeCancel = 2s;

std::string seconds_text(Duration d) { return fmt::format("{:.0f} s", std::chrono::duration<double>(d).count()); }

std::string what(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return text::one_line(x.what());
    } catch (...) {
        return "unknown error";
    }
}

// What the engine's worker thread hands back to the loop after a run.
struct WorkerResult {
    sync::RunReport report;
    std::optional<store::OpenOpCounts> store_figures;
    cdp::ApiStats api;
    uint64_t engine = 0;  // which engine ran it (a new one after each reset)
};

// The leader's one process: an event loop (signals, schedule, NOTIFY, watchdog, metrics)
// on the calling thread, and the engine's runs on one worker thread, whose completion is
// posted back to the loop. PostgreSQL's small control queries run on the loop with a short
// statement_timeout; the engine's own work never does.
class Daemon {
public:
    Daemon(config::Config cfg, const DaemonOptions& o)
        : cfg_(std::move(cfg)),
          options_(o),
          log_(o.log ? o.log : logging::logger("daemon")),
          signals_(io_.get_executor(), log_,
                   SignalHandlers{[this](bool again) { on_stop_signal(again); },
                                  [this] { reload_asked_ = true; wake_.cancel(); },
                                  [this] { full_signal_ = true; wake_.cancel(); }}),
          poll_("poll", poll_period(cfg_), 0.1, FirstRun::immediately, Clock::now(), ::getpid()),
          full_("full resync", full_period(cfg_), 0.01, FirstRun::after_period, Clock::now(), ::getpid() + 1),
          pg_backoff_(1s, 30s),
          run_backoff_(poll_period(cfg_), max_backoff(cfg_)),
          postgres_("PostgreSQL (" + store::redact_dsn(cfg_.database.dsn) + ")", log_),
          runs_("sync runs", log_),
          change_query_("database.change_query", log_),
          watchdog_(std::chrono::duration_cast<Duration>(notifier_.watchdog_interval()) / 2) {}

    int run() {
        ::signal(SIGPIPE, SIG_IGN);
        unblock_daemon_signals();  // every other thread (the worker, spdlog's) keeps them blocked
        start_metrics_server();
        net::co_spawn(io_, main_loop(), [this](std::exception_ptr e) {
            if (e) log_->critical("the daemon's loop ended: {}", what(e));
            finish();
        });
        if (notifier_.watchdog_interval().count() > 0) feed_watchdog();
        io_.run();
        return 0;
    }

private:
    // --- the loop

    net::awaitable<void> main_loop() {
        log_->info("cdp-sync daemon started: pid {}, schema {}, poll every {} s, full resync every {} h", ::getpid(),
                   cfg_.database.schema, cfg_.sync.poll_interval_s, cfg_.sync.full_resync_interval_h);
        notifier_.ready();
        set_status("starting");
        while (!stop_) {
            if (std::exchange(reload_asked_, false)) reload();
            if (control_broken_) lose_control(control_broken_why_);
            if (!control_ && !open_control()) {
                co_await wait_for(pg_backoff_.next());
                continue;
            }
            std::optional<Duration> wait;
            try {
                if (!control_->leading() && !become_leader()) wait = standby_period(cfg_);
                else co_await lead();
            } catch (const std::exception& e) {
                if (store::is_db_error(e)) {
                    lose_control(e.what());
                    wait = pg_backoff_.next();
                } else {  // not expected; still no reason to stop the service
                    wait = run_backoff_.next();
                    log_->error("unexpected error: {}; going on in {}", text::one_line(e.what()), seconds_text(*wait));
                }
            }
            if (wait) co_await wait_for(*wait);
        }
        say_stopped();
    }

    void say_stopped() {
        notifier_.stopping();
        set_status("stopping");
        if (control_ && control_->leading()) {
            try {
                control_->publish("stopped", std::nullopt);
            } catch (const std::exception& e) {
                log_->debug("publishing 'stopped': {}", text::one_line(e.what()));
            }
        }
    }

    // Ends the loop: everything that waits on it is cancelled, the engine and the control
    // connection closed.
    void finish() {
        finished_ = true;
        signals_.cancel();
        for (auto* t : {&wake_, &watchdog_timer_, &grace_timer_, &drain_timer_, &monitor_timer_}) t->cancel();
        if (metrics_server_) metrics_server_->stop();
        close_notify_watch();
        engine_.reset();
        control_.reset();
        log_->info("cdp-sync daemon stopped");
        log_->flush();
        io_.stop();
    }

    // --- connections and leadership

    bool open_control() {
        try {
            control_ = std::make_unique<store::Control>(cfg_.database.dsn, cfg_.database.schema, log_);
            postgres_.ok(Clock::now());
            pg_backoff_.reset();
            watch_notify();
            return true;
        } catch (const std::exception& e) {
            control_.reset();
            postgres_.failed(text::one_line(e.what()), "waiting for it, retrying with backoff (up to 30 s)", Clock::now());
            set_status("waiting for PostgreSQL: " + text::one_line(e.what()));
            return false;
        }
    }

    void lose_control(const std::string& why) {
        const bool was_leader = control_ && control_->leading();
        close_notify_watch();
        control_.reset();
        control_broken_ = false;
        engine_.reset();  // never during a run: the loop awaits the run before it gets here
        metrics_.set_leader(false);
        if (was_leader) log_->error("lost the leader lock: {}; not syncing until it is held again", text::one_line(why));
        postgres_.failed(text::one_line(why), "reconnecting with backoff", Clock::now());
        set_status("waiting for PostgreSQL: " + text::one_line(why));
    }

    // Something other than the loop itself found the control connection broken: the loop
    // replaces it when it next comes round.
    void control_failed(const std::string& why) {
        control_broken_ = true;
        control_broken_why_ = why;
        wake_.cancel();
    }

    bool become_leader() {
        if (!control_->try_lead()) {
            std::string who = "another cdp-sync";
            if (auto l = store::current_leader(control_->connection(), cfg_.database.schema); l && l->pid)
                who = fmt::format("pid {} on {}", *l->pid, l->host.empty() ? "?" : l->host);
            if (!standby_) log_->info("standby: {} leads schema {}; taking over when it stops", who, cfg_.database.schema);
            standby_ = true;
            set_status("standby: the leader is " + who);
            return false;
        }
        standby_ = false;
        metrics_.set_leader(true);
        const auto now = Clock::now();
        log_->info("leader of schema {}: this process runs the sync", cfg_.database.schema);
        if (int n = control_->requeue_orphans(); n > 0)
            log_->warn("{} resync request(s) of a previous leader queued again", n);
        poll_.trigger(now);
        if (full_.enabled()) {
            if (auto ago = control_->seconds_since_last_full())
                full_.last_ran_ago(Duration(static_cast<int64_t>(*ago * 1000)), now);
            else
                full_.trigger(now);  // never a full resync: the first run is one
        }
        last_ok_value_.reset();
        return true;
    }

    // --- NOTIFY: the control connection's socket watched on the loop

    void watch_notify() {
        close_notify_watch();
        const int fd = ::dup(control_->socket());
        if (fd < 0) return;  // the loop's waits still read notifications at each turn
        notify_socket_.emplace(io_, fd);
        arm_notify(notify_generation_);
    }

    void arm_notify(uint64_t generation) {
        notify_socket_->async_wait(net::posix::descriptor_base::wait_read,
                                   [this, generation](const boost::system::error_code& ec) {
                                       if (ec || generation != notify_generation_ || !control_) return;
                                       if (!take_notified()) return;
                                       arm_notify(generation);
                                   });
    }

    // Reads the notifications that arrived; false when the connection is gone.
    bool take_notified() {
        try {
            if (control_->take_notified()) {
                wake_pending_ = true;
                wake_.cancel();
            }
            return true;
        } catch (const std::exception& e) {
            if (!store::is_db_error(e)) throw;
            control_failed(e.what());
            return false;
        }
    }

    void close_notify_watch() {
        ++notify_generation_;
        notify_socket_.reset();
    }

    // --- the leader's cycle: one run, or a wait until the next thing is due

    net::awaitable<void> lead() {
        auto now = Clock::now();
        if (control_->take_notified()) wake_pending_ = true;
        if (auto request = control_->claim_resync(::getpid())) {
            co_await run_requested(*request);
            co_return;
        }
        // SIGUSR1 asks for a full resync even when the periodic one is off (interval 0).
        if (std::exchange(full_signal_, false)) full_asked_ = true;
        if (full_asked_ || full_.due(now)) {
            full_asked_ = false;
            sync::RunRequest r;
            r.kind = sync::RunKind::full;
            co_await run_and_schedule(r, "full resync");
            co_return;
        }
        if (poll_.due(now) || wake_pending_) {
            co_await incremental();
            co_return;
        }
        auto next = poll_.next();
        if (full_.enabled()) next = std::min(next, full_.next());
        publish_idle(next);
        co_await wait_until(next);
    }

    // The change query's value, or nullopt when there is none or it failed.
    std::optional<std::string> change_value(Clock::time_point now) {
        if (cfg_.database.change_query.empty()) return std::nullopt;
        try {
            auto value = control_->change_value(cfg_.database.change_query);
            change_query_.ok(now);
            return value;
        } catch (const std::exception& e) {
            if (store::classify_db_error(e) == store::DbError::connection_lost) throw;
            change_query_.failed(text::one_line(e.what()), "diffing at every poll until it works", now);
            return std::nullopt;
        }
    }

    net::awaitable<void> incremental() {
        const auto now = Clock::now();
        const bool woken = std::exchange(wake_pending_, false);
        std::optional<std::string> value = change_value(now);
        if (value && last_ok_value_ && *value == *last_ok_value_ && !woken) {
            log_->debug("change query unchanged ({}): no diff", *value);
            poll_.done(now);
            co_return;
        }
        sync::RunRequest r;
        r.kind = sync::RunKind::incremental;
        const bool ok = co_await run_and_schedule(r, woken ? "incremental run (NOTIFY)" : "incremental run");
        if (ok) last_ok_value_ = value;
        else last_ok_value_.reset();
    }

    net::awaitable<void> run_requested(const store::ResyncRequest& request) {
        log_->info("resync request {} from {}{}", request.id, request.requested_by.empty() ? "?" : request.requested_by,
                   request.force ? " (--force)" : "");
        sync::RunRequest r;
        r.kind = sync::RunKind::full;
        r.force = request.force;
        r.only_groups = request.only_groups;
        std::string error;
        const std::string label = fmt::format("full resync (request {})", request.id);
        std::optional<sync::RunReport> report = co_await run_engine(r, label, error);
        if (report) {
            control_->finish_resync(request.id, report->run_id ? std::optional<int64_t>(report->run_id) : std::nullopt,
                                    sync::to_string(report->status), report->exit_code(), report->to_text());
            after_run(*report, r.kind);
        } else {
            control_->finish_resync(request.id, std::nullopt, "failed", 1, "the daemon could not run it: " + error);
        }
    }

    // Runs the engine and moves the schedule on; true when the run succeeded.
    net::awaitable<bool> run_and_schedule(sync::RunRequest request, std::string label) {
        std::string error;
        std::optional<sync::RunReport> report = co_await run_engine(request, label, error);
        co_return report && after_run(*report, request.kind);
    }

    // --- a run: on the worker thread, while the loop goes on serving

    // The report, or nullopt with `error` when the run threw (the schedule then backs off).
    net::awaitable<std::optional<sync::RunReport>> run_engine(sync::RunRequest request, std::string label,
                                                              std::string& error) {
        const auto now = Clock::now();
        publish(label, full_.next());
        set_status("leader: " + label);
        request.stop = &stop_;
        request.progress = &progress_;
        run_active_ = true;
        start_monitor(label);
        std::optional<WorkerResult> result;
        std::exception_ptr failure;
        try {
            result = co_await net::co_spawn(
                worker_, [this, request]() -> net::awaitable<WorkerResult> { co_return run_on_worker(request); },
                net::use_awaitable);
        } catch (...) {
            failure = std::current_exception();
        }
        run_active_ = false;
        for (auto* t : {&monitor_timer_, &drain_timer_, &grace_timer_}) t->cancel();
        status_.clear();  // the monitor changed STATUS= behind set_status's back
        if (result) {
            record(*result);
            co_return std::move(result->report);
        }
        metrics_.record_run_error(request.kind);
        write_metrics_textfile();
        error = what(failure);
        const auto wait = run_backoff_.next();
        runs_.failed(label + ": " + error, "retrying in " + seconds_text(wait) + " with a new connection", now);
        poll_.trigger(Clock::now() + wait);
        if (request.kind == sync::RunKind::full) full_.trigger(Clock::now() + wait);
        control_->ping();  // throws when PostgreSQL itself is gone: leadership is lost
        co_return std::nullopt;
    }

    // On the worker thread: the engine (built here when there is none), the run, and the
    // figures the metrics want from PostgreSQL, so the loop never waits for a query of the run.
    WorkerResult run_on_worker(const sync::RunRequest& request) {
        try {
            if (!engine_) {
                auto engine = std::make_unique<sync::Engine>(cfg_, logging::logger("sync"));
                std::lock_guard lock(engine_mutex_);
                engine_ = std::move(engine);
                ++engine_number_;
            }
            WorkerResult out;
            out.report = engine_->run(request);
            out.api = engine_->api_stats();
            out.engine = engine_number_;
            try {
                out.store_figures = engine_->open_op_counts();
            } catch (const std::exception& e) {
                log_->debug("metrics: reading the journal's figures failed: {}", text::one_line(e.what()));
            }
            return out;
        } catch (...) {
            std::lock_guard lock(engine_mutex_);
            engine_.reset();
            throw;
        }
    }

    void record(const WorkerResult& r) {
        metrics_.record_run(r.report, std::chrono::system_clock::now());
        metrics_.set_api_stats(r.engine, r.api);
        if (r.store_figures) metrics_.set_store_figures(*r.store_figures);
        write_metrics_textfile();
        if (stop_) {
            // The engine's calls may have been cancelled for good: the next run needs a new one.
            std::lock_guard lock(engine_mutex_);
            engine_.reset();
        }
    }

    bool after_run(const sync::RunReport& r, sync::RunKind kind) {
        const auto now = Clock::now();
        last_status_ = sync::to_string(r.status);
        last_run_end_ = now;
        if (r.status == sync::RunStatus::busy) {
            if (!busy_logged_) log_->info("another cdp-sync process is applying to schema {}; trying again next poll", cfg_.database.schema);
            busy_logged_ = true;
            poll_.done(now);
            return false;
        }
        busy_logged_ = false;
        if (r.status == sync::RunStatus::interrupted) return false;  // stopping; the next leader resumes it
        if (r.status == sync::RunStatus::succeeded) {
            runs_.ok(now);
            run_backoff_.reset();
            poll_.done(now);
            if (kind == sync::RunKind::full) full_.done(now);
            return true;
        }
        const auto wait = run_backoff_.next();
        runs_.failed(fmt::format("run {} {}: {}", r.run_id, sync::to_string(r.status), text::one_line(r.error)),
                     "retrying in " + seconds_text(wait) + ", backing off while it keeps failing", now);
        poll_.trigger(now + wait);
        if (kind == sync::RunKind::full) full_.trigger(now + wait);
        return false;
    }

    // Every kProgressEvery during a run: the progress line, logged and published.
    void start_monitor(std::string label) {
        monitor_ = RunMonitor(std::move(label));
        arm_monitor();
    }

    void arm_monitor() {
        monitor_timer_.expires_after(kProgressEvery);
        monitor_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || !run_active_ || !control_ || control_broken_) return;
            try {
                if (auto p = store::running_run(control_->connection(), cfg_.database.schema)) {
                    const std::string line = monitor_->line(*p, Clock::now());
                    log_->info("{}", line);
                    store::set_leader_phase(control_->connection(), cfg_.database.schema, line);
                    notifier_.status("leader: " + line);
                }
            } catch (const std::exception& e) {
                if (store::classify_db_error(e) == store::DbError::connection_lost) {
                    control_failed(e.what());
                    return;
                }
                log_->debug("progress: {}", text::one_line(e.what()));
            }
            if (!take_notified()) return;  // the queries above may have read a notification
            arm_monitor();
        });
    }

    // --- stopping

    void on_stop_signal(bool again) {
        if (again) stop_now();
        stop_ = true;
        wake_.cancel();
        if (!run_active_) return;
        log_->info("the run in progress stops at its next safe point; calls still unanswered in {} are cancelled "
                   "(their ops stay pending)",
                   seconds_text(kDrainBeforeCancel));
        drain_timer_.expires_after(kDrainBeforeCancel);
        drain_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || !run_active_) return;
            std::lock_guard lock(engine_mutex_);
            if (engine_) engine_->cancel_calls();
        });
        grace_timer_.expires_after(options_.stop_grace);
        grace_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || !run_active_) return;
            log_->warn("the run did not end within {} of the stop signal", seconds_text(options_.stop_grace));
            stop_now();
        });
    }

    [[noreturn]] void stop_now() {
        log_->warn("exiting now; the run in progress stays in the journal and the next leader resumes it");
        log_->flush();
        notifier_.stopping();
        std::_Exit(0);
    }

    // --- the watchdog: fed from the loop, on progress

    void feed_watchdog() {
        const auto interval = std::chrono::duration_cast<Duration>(notifier_.watchdog_interval());
        watchdog_timer_.expires_after(interval / 4);
        watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || finished_) return;
            if (watchdog_.should_feed(Clock::now(), run_active_, progress_.load())) notifier_.watchdog();
            else log_->warn("watchdog: the run made no progress (no CDP call answered) for a while; not feeding it");
            feed_watchdog();
        });
    }

    // --- metrics

    void start_metrics_server() {
        if (cfg_.metrics.listen.empty()) return;
        try {
            metrics_server_.emplace(io_.get_executor(), cfg_.metrics.listen, [this] { return render_metrics(); }, log_);
            log_->info("metrics on http://{}/metrics", cfg_.metrics.listen);
        } catch (const std::exception& e) {
            log_->error("metrics.listen: {}; serving no metrics", e.what());
        }
    }

    std::string render_metrics() {
        metrics_.set_rate_limit(cfg_.cdp.rate_limit_qps);
        return metrics_.render();
    }

    void write_metrics_textfile() {
        if (cfg_.metrics.textfile.empty()) return;
        try {
            write_textfile(cfg_.metrics.textfile, render_metrics());
        } catch (const std::exception& e) {
            log_->warn("metrics.textfile: {}", e.what());
        }
    }

    // --- waiting

    net::awaitable<void> wait_until(Clock::time_point t) {
        auto d = std::chrono::duration_cast<Duration>(t - Clock::now());
        co_await wait_for(std::clamp<Duration>(d, 0ms, 5s));
    }

    // Until `d` passed, a signal came, or a notification arrived (each cancels wake_).
    net::awaitable<void> wait_for(Duration d) {
        if (stop_ || reload_asked_ || control_broken_) co_return;
        if (control_) {
            // The loop's own queries may have read a notification from the socket already.
            if (!take_notified()) co_return;
            if (control_->leading() && (wake_pending_ || full_signal_)) co_return;
        }
        wake_.expires_after(d);
        boost::system::error_code ec;
        co_await wake_.async_wait(net::redirect_error(net::use_awaitable, ec));
    }

    // --- reporting

    void publish(const std::string& phase, Clock::time_point next_full) {
        std::optional<std::chrono::seconds> in;
        if (full_.enabled())
            in = std::chrono::duration_cast<std::chrono::seconds>(std::max(Duration(0), std::chrono::duration_cast<Duration>(next_full - Clock::now())));
        control_->publish(phase, in);
    }

    void publish_idle(Clock::time_point next) {
        const auto in = std::chrono::duration_cast<Duration>(next - Clock::now());
        std::string s = "idle";
        if (!last_status_.empty())
            s += fmt::format(", last run {} {} ago", last_status_,
                             seconds_text(std::chrono::duration_cast<Duration>(Clock::now() - last_run_end_)));
        s += ", next in " + seconds_text(std::max(Duration(0), in));
        publish(s, full_.next());
        set_status("leader: " + s);
    }

    void set_status(const std::string& s) {
        if (s == status_) return;
        status_ = s;
        notifier_.status(s);
    }

    // --- SIGHUP

    void reload() {
        if (options_.config_path.empty()) {
            log_->warn("SIGHUP: no configuration file to reload");
            return;
        }
        config::Config next;
        try {
            next = config::load_file(options_.config_path);
        } catch (const std::exception& e) {
            log_->error("configuration reload failed, keeping the running one: {}", e.what());
            return;
        }
        notifier_.reloading();
        try {
            logging::init(next.logging);
        } catch (const std::exception& e) {
            log_->error("logging reload failed, keeping the old sinks: {}", e.what());
        }
        std::vector<std::string> changed;
        auto note = [&](const char* key, const auto& a, const auto& b) {
            if (a != b) changed.push_back(fmt::format("{} {} -> {}", key, a, b));
        };
        note("cdp.rate_limit_qps", cfg_.cdp.rate_limit_qps, next.cdp.rate_limit_qps);
        note("cdp.max_in_flight", cfg_.cdp.max_in_flight, next.cdp.max_in_flight);
        note("sync.poll_interval_s", cfg_.sync.poll_interval_s, next.sync.poll_interval_s);
        note("sync.full_resync_interval_h", cfg_.sync.full_resync_interval_h, next.sync.full_resync_interval_h);
        note("sync.max_deletes", cfg_.sync.max_deletes, next.sync.max_deletes);
        note("logging.level", cfg_.logging.level, next.logging.level);
        if (cfg_.database.desired_memberships != next.database.desired_memberships) changed.push_back("database.desired_memberships");
        if (cfg_.database.desired_groups != next.database.desired_groups) changed.push_back("database.desired_groups");
        if (cfg_.database.change_query != next.database.change_query) changed.push_back("database.change_query");
        const bool reconnect = cfg_.database.dsn != next.database.dsn || cfg_.database.schema != next.database.schema;
        if (reconnect) changed.push_back("database.dsn/schema (reconnecting; leadership is taken again)");
        const auto now = Clock::now();
        poll_.set_period(poll_period(next), now);
        full_.set_period(full_period(next), now);
        run_backoff_.set_limits(poll_period(next), max_backoff(next));
        cfg_ = std::move(next);
        engine_.reset();  // the next run builds one with the new settings
        last_ok_value_.reset();
        if (reconnect) {
            close_notify_watch();
            control_.reset();
            metrics_.set_leader(false);
            postgres_ = Condition("PostgreSQL (" + store::redact_dsn(cfg_.database.dsn) + ")", log_);
        }
        std::string list;
        for (const auto& c : changed) list += (list.empty() ? "" : "; ") + c;
        log_->info("configuration reloaded from {}: {}", options_.config_path.string(), list.empty() ? "no changes" : list);
        notifier_.ready();
    }

    // Declared first: destroyed last, after everything that waits on it.
    net::io_context io_{1};
    // The engine's runs, one at a time; its thread starts with the signals blocked.
    net::thread_pool worker_{1};
    config::Config cfg_;
    DaemonOptions options_;
    std::shared_ptr<spdlog::logger> log_;
    SystemdNotifier notifier_;
    LoopSignals signals_;
    net::steady_timer wake_{io_}, watchdog_timer_{io_}, grace_timer_{io_}, drain_timer_{io_}, monitor_timer_{io_};
    std::unique_ptr<store::Control> control_;
    std::optional<net::posix::stream_descriptor> notify_socket_;
    uint64_t notify_generation_ = 0;
    bool control_broken_ = false;
    std::string control_broken_why_;
    // Written by the worker (under engine_mutex_) while a run is active, by the loop otherwise.
    std::mutex engine_mutex_;
    std::unique_ptr<sync::Engine> engine_;
    uint64_t engine_number_ = 0;
    std::atomic<bool> stop_{false};        // RunRequest::stop
    std::atomic<uint64_t> progress_{0};    // RunRequest::progress
    bool run_active_ = false;
    bool finished_ = false;
    std::optional<RunMonitor> monitor_;
    Periodic poll_, full_;
    Backoff pg_backoff_, run_backoff_;
    Condition postgres_, runs_, change_query_;
    ProgressWatchdog watchdog_;
    Metrics metrics_;
    std::optional<MetricsServer> metrics_server_;
    std::optional<std::string> last_ok_value_;
    bool wake_pending_ = false;
    bool full_asked_ = false;
    bool full_signal_ = false;
    bool reload_asked_ = false;
    bool standby_ = false;
    bool busy_logged_ = false;
    std::string status_;
    std::string last_status_;
    Clock::time_point last_run_end_{};
};

}  // namespace

int run_daemon(config::Config config, const DaemonOptions& options) {
    Daemon d(std::move(config), options);
    return d.run();
}

}  // namespace cdpsync::daemon
