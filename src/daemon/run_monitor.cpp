#include "daemon/run_monitor.hpp"

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "daemon/control.hpp"

namespace cdpsync::daemon {

RunMonitor::RunMonitor(std::string dsn, std::string schema, std::string label, std::chrono::milliseconds every,
                       std::shared_ptr<spdlog::logger> log, StatusSink on_status)
    : dsn_(std::move(dsn)),
      schema_(std::move(schema)),
      label_(std::move(label)),
      every_(every),
      log_(std::move(log)),
      on_status_(std::move(on_status)) {
    thread_ = std::thread([this] { watch(); });
}

RunMonitor::~RunMonitor() {
    {
        std::lock_guard lock(mutex_);
        quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void RunMonitor::watch() {
    std::unique_ptr<pqxx::connection> conn;
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, every_, [this] { return quit_; })) {
        lock.unlock();
        try {
            if (!conn) conn = connect(dsn_, "cdp-sync progress");
            auto p = running_run(*conn, schema_);
            const auto now = std::chrono::steady_clock::now();
            if (p) {
                std::string line = fmt::format("run {} ({}) {}", p->run_id, label_, p->phase);
                if (p->phase == "apply" && p->total > 0) {
                    const double secs = std::chrono::duration<double>(now - last_tick_).count();
                    const double rate = last_done_ >= 0 && secs > 0 ? static_cast<double>(p->done - last_done_) / secs : 0;
                    line += fmt::format(": {}/{} ops, {:.1f} ops/s", p->done, p->total, rate);
                    if (rate > 0) line += fmt::format(", ETA {:.0f} s", static_cast<double>(p->total - p->done) / rate);
                    last_done_ = p->done;
                } else if (p->phase == "snapshot" && p->groups_total > 0) {
                    line += fmt::format(": {}/{} groups, {} member pages, {:.0f} s into the run", p->groups_done,
                                        p->groups_total, p->pages, p->seconds);
                } else {
                    line += fmt::format(", {:.0f} s into the run", p->seconds);
                }
                last_tick_ = now;
                log_->info("{}", line);
                set_leader_phase(*conn, schema_, line);
                if (on_status_) on_status_(line);
            }
        } catch (const std::exception& e) {
            conn.reset();  // the engine reports PostgreSQL failures; try again next tick
            log_->debug("progress: {}", e.what());
        }
        lock.lock();
    }
}

}  // namespace cdpsync::daemon
