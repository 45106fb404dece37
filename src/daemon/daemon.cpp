#include "daemon/daemon.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <pqxx/except>

#include "config/logging.hpp"
#include "daemon/control.hpp"
#include "daemon/notify.hpp"
#include "daemon/run_monitor.hpp"
#include "daemon/schedule.hpp"
#include "daemon/signals.hpp"
#include "store/store.hpp"
#include "sync/engine.hpp"
#include "config/text.hpp"

namespace cdpsync::daemon {
namespace {

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

std::string seconds_text(Duration d) { return fmt::format("{:.0f} s", std::chrono::duration<double>(d).count()); }

// Pets systemd's watchdog while the main loop is alive: it came round recently, or it is
// inside a run (the engine gives no progress callback yet; see the report).
class Watchdog {
public:
    Watchdog(SystemdNotifier& notifier) : notifier_(notifier) {
        const auto interval = std::chrono::duration_cast<Duration>(notifier.watchdog_interval());
        if (interval.count() <= 0) return;
        thread_ = std::thread([this, interval] {
            std::unique_lock lock(mutex_);
            while (!quit_) {
                cv_.wait_for(lock, interval / 4);
                const auto age = Clock::now() - Clock::time_point(Clock::duration(beat_.load()));
                if (busy_.load() || age < interval / 2) notifier_.watchdog();
            }
        });
    }
    ~Watchdog() {
        {
            std::lock_guard lock(mutex_);
            quit_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    void beat() { beat_.store(Clock::now().time_since_epoch().count()); }
    void set_busy(bool b) { busy_.store(b); }

private:
    SystemdNotifier& notifier_;
    std::atomic<Clock::rep> beat_{Clock::now().time_since_epoch().count()};
    std::atomic<bool> busy_{false};
    std::mutex mutex_;
    std::condition_variable cv_;
    bool quit_ = false;
    std::thread thread_;
};

class Daemon {
public:
    Daemon(config::Config cfg, const DaemonOptions& o)
        : cfg_(std::move(cfg)),
          options_(o),
          log_(o.log ? o.log : logging::logger("daemon")),
          signals_(log_, o.stop_grace, [this] { stop_now(); }),
          watchdog_(notifier_),
          poll_("poll", poll_period(cfg_), 0.1, FirstRun::immediately, Clock::now(), ::getpid()),
          full_("full resync", full_period(cfg_), 0.01, FirstRun::after_period, Clock::now(), ::getpid() + 1),
          pg_backoff_(1s, 30s),
          run_backoff_(poll_period(cfg_), max_backoff(cfg_)),
          postgres_("PostgreSQL (" + store::redact_dsn(cfg_.database.dsn) + ")", log_),
          runs_("sync runs", log_),
          change_query_("database.change_query", log_) {}

    int run() {
        ::signal(SIGPIPE, SIG_IGN);
        log_->info("cdp-sync daemon started: pid {}, schema {}, poll every {} s, full resync every {} h", ::getpid(),
                   cfg_.database.schema, cfg_.sync.poll_interval_s, cfg_.sync.full_resync_interval_h);
        notifier_.ready();
        set_status("starting");
        while (!signals_.stop_requested()) {
            watchdog_.beat();
            if (signals_.take_reload()) reload();
            if (!control_ && !open_control()) {
                wait_for(pg_backoff_.next());
                continue;
            }
            try {
                if (!control_->leading() && !become_leader()) {
                    wait_for(standby_period(cfg_));
                    continue;
                }
                lead();
            } catch (const pqxx::failure& e) {
                lose_control(e.what());
                wait_for(pg_backoff_.next());
            } catch (const std::exception& e) {
                // Not expected; still no reason to stop the service.
                const auto wait = run_backoff_.next();
                log_->error("unexpected error: {}; going on in {}", text::one_line(e.what()), seconds_text(wait));
                wait_for(wait);
            }
        }
        notifier_.stopping();
        set_status("stopping");
        if (control_ && control_->leading()) {
            try {
                control_->publish("stopped", std::nullopt);
            } catch (const std::exception&) {
            }
        }
        engine_.reset();
        control_.reset();
        log_->info("cdp-sync daemon stopped");
        log_->flush();
        return 0;
    }

private:
    // --- connections and leadership

    bool open_control() {
        try {
            control_ = std::make_unique<Control>(cfg_.database.dsn, cfg_.database.schema, log_);
            postgres_.ok(Clock::now());
            pg_backoff_.reset();
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
        control_.reset();
        engine_.reset();
        if (was_leader) log_->error("lost the leader lock: {}; not syncing until it is held again", text::one_line(why));
        postgres_.failed(text::one_line(why), "reconnecting with backoff", Clock::now());
        set_status("waiting for PostgreSQL: " + text::one_line(why));
    }

    bool become_leader() {
        if (!control_->try_lead()) {
            std::string who = "another cdp-sync";
            if (auto l = current_leader(control_->connection(), cfg_.database.schema); l && l->pid)
                who = fmt::format("pid {} on {}", *l->pid, l->host.empty() ? "?" : l->host);
            if (!standby_) log_->info("standby: {} leads schema {}; taking over when it stops", who, cfg_.database.schema);
            standby_ = true;
            set_status("standby: the leader is " + who);
            return false;
        }
        standby_ = false;
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

    // --- the leader's cycle: one run, or a wait until the next thing is due

    void lead() {
        auto now = Clock::now();
        if (control_->take_notified()) wake_pending_ = true;
        if (auto request = control_->claim_resync(::getpid())) {
            run_requested(*request);
            return;
        }
        // SIGUSR1 asks for a full resync even when the periodic one is off (interval 0).
        if (signals_.take_full_resync()) full_asked_ = true;
        if (full_asked_ || full_.due(now)) {
            full_asked_ = false;
            sync::RunRequest r;
            r.kind = sync::RunKind::full;
            run_and_schedule(r, "full resync");
            return;
        }
        if (poll_.due(now) || wake_pending_) {
            incremental();
            return;
        }
        auto next = poll_.next();
        if (full_.enabled()) next = std::min(next, full_.next());
        publish_idle(next);
        wait_until(next);
    }

    void incremental() {
        const auto now = Clock::now();
        const bool woken = std::exchange(wake_pending_, false);
        std::optional<std::string> value;
        if (!cfg_.database.change_query.empty()) {
            try {
                value = control_->change_value(cfg_.database.change_query);
                change_query_.ok(now);
            } catch (const pqxx::broken_connection&) {
                throw;
            } catch (const std::exception& e) {
                change_query_.failed(text::one_line(e.what()), "diffing at every poll until it works", now);
            }
            if (value && last_ok_value_ && *value == *last_ok_value_ && !woken) {
                log_->debug("change query unchanged ({}): no diff", *value);
                poll_.done(now);
                return;
            }
        }
        sync::RunRequest r;
        r.kind = sync::RunKind::incremental;
        if (run_and_schedule(r, woken ? "incremental run (NOTIFY)" : "incremental run")) last_ok_value_ = value;
        else last_ok_value_.reset();
    }

    void run_requested(const ResyncRequest& request) {
        log_->info("resync request {} from {}{}", request.id, request.requested_by.empty() ? "?" : request.requested_by,
                   request.force ? " (--force)" : "");
        sync::RunRequest r;
        r.kind = sync::RunKind::full;
        r.force = request.force;
        r.only_groups = request.only_groups;
        std::optional<sync::RunReport> report;
        std::string error;
        run_engine(r, fmt::format("full resync (request {})", request.id), report, error);
        if (report) {
            control_->finish_resync(request.id, report->run_id ? std::optional<int64_t>(report->run_id) : std::nullopt,
                                    sync::to_string(report->status), report->exit_code(), report->to_text());
            after_run(*report, r.kind);
        } else {
            control_->finish_resync(request.id, std::nullopt, "failed", 1, "the daemon could not run it: " + error);
        }
    }

    // Runs the engine and moves the schedule on; true when the run succeeded.
    bool run_and_schedule(const sync::RunRequest& request, const std::string& label) {
        std::optional<sync::RunReport> report;
        std::string error;
        run_engine(request, label, report, error);
        if (!report) return false;
        return after_run(*report, request.kind);
    }

    void run_engine(const sync::RunRequest& request, const std::string& label, std::optional<sync::RunReport>& report,
                    std::string& error) {
        const auto now = Clock::now();
        publish(label, full_.next());
        set_status("leader: " + label);
        try {
            if (!engine_) engine_ = std::make_unique<sync::Engine>(cfg_, logging::logger("sync"));
            signals_.set_busy(true);
            watchdog_.set_busy(true);
            RunMonitor monitor(cfg_.database.dsn, cfg_.database.schema, label, kProgressEvery, log_,
                               [this](const std::string& line) { notifier_.status("leader: " + line); });
            sync::RunRequest stoppable = request;
            stoppable.stop = &signals_.stop_flag();
            report = engine_->run(stoppable);
            status_.clear();  // the monitor changed STATUS= behind set_status's back
            signals_.set_busy(false);
            watchdog_.set_busy(false);
            last_run_end_ = Clock::now();
        } catch (const std::exception& e) {
            signals_.set_busy(false);
            watchdog_.set_busy(false);
            engine_.reset();
            error = text::one_line(e.what());
            const auto wait = run_backoff_.next();
            runs_.failed(label + ": " + error, "retrying in " + seconds_text(wait) + " with a new connection", now);
            poll_.trigger(Clock::now() + wait);
            if (request.kind == sync::RunKind::full) full_.trigger(Clock::now() + wait);
            control_->ping();  // throws when PostgreSQL itself is gone: leadership is lost
        }
    }

    bool after_run(const sync::RunReport& r, sync::RunKind kind) {
        const auto now = Clock::now();
        last_status_ = sync::to_string(r.status);
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

    // --- waiting

    void wait_until(Clock::time_point t) {
        auto d = std::chrono::duration_cast<Duration>(t - Clock::now());
        wait_for(std::clamp<Duration>(d, 0ms, 5s));
    }

    // Sleeps until `d` passed, a signal came, or a notification arrived.
    void wait_for(Duration d) {
        if (signals_.stop_requested()) return;
        pollfd fds[2] = {{signals_.wake_fd(), POLLIN, 0}, {-1, POLLIN, 0}};
        nfds_t n = 1;
        if (control_) {
            fds[1].fd = control_->socket();
            n = fds[1].fd >= 0 ? 2 : 1;
        }
        const auto wd = std::chrono::duration_cast<Duration>(notifier_.watchdog_interval());
        if (wd.count() > 0) d = std::min<Duration>(d, wd / 3);
        ::poll(fds, n, static_cast<int>(std::max<int64_t>(0, d.count())));
        signals_.drain();
        watchdog_.beat();
        if (n == 2 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            try {
                if (control_->take_notified()) wake_pending_ = true;
            } catch (const pqxx::failure& e) {
                lose_control(e.what());
            }
        }
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
            control_.reset();
            postgres_ = Condition("PostgreSQL (" + store::redact_dsn(cfg_.database.dsn) + ")", log_);
        }
        std::string list;
        for (const auto& c : changed) list += (list.empty() ? "" : "; ") + c;
        log_->info("configuration reloaded from {}: {}", options_.config_path.string(), list.empty() ? "no changes" : list);
        notifier_.ready();
    }

    void stop_now() {
        log_->warn("exiting now; the run in progress stays in the journal and the next leader resumes it");
        log_->flush();
        notifier_.stopping();
        std::_Exit(0);
    }

    config::Config cfg_;
    DaemonOptions options_;
    std::shared_ptr<spdlog::logger> log_;
    SystemdNotifier notifier_;
    SignalWatcher signals_;
    Watchdog watchdog_;
    std::unique_ptr<Control> control_;
    std::unique_ptr<sync::Engine> engine_;
    Periodic poll_, full_;
    Backoff pg_backoff_, run_backoff_;
    Condition postgres_, runs_, change_query_;
    std::optional<std::string> last_ok_value_;
    bool wake_pending_ = false;
    bool full_asked_ = false;
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
