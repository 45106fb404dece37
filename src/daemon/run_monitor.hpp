// Watches the run in progress from outside the engine, on a thread and a connection of its
// own, reading the run and op tables: every few seconds it logs the phase and, while
// applying, done/total, rate and ETA; it updates systemd's STATUS= and the leader's phase.
// It changes nothing the engine reads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/logger.h>

namespace cdpsync::daemon {

class RunMonitor {
public:
    using StatusSink = std::function<void(const std::string&)>;
    RunMonitor(std::string dsn, std::string schema, std::string label, std::chrono::milliseconds every,
               std::shared_ptr<spdlog::logger> log, StatusSink on_status);
    ~RunMonitor();  // stops and joins
    RunMonitor(const RunMonitor&) = delete;
    RunMonitor& operator=(const RunMonitor&) = delete;

private:
    void watch();

    std::string dsn_, schema_, label_;
    std::chrono::milliseconds every_;
    std::shared_ptr<spdlog::logger> log_;
    StatusSink on_status_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool quit_ = false;
    int64_t last_done_ = -1;
    std::chrono::steady_clock::time_point last_tick_{};
    std::thread thread_;
};

}  // namespace cdpsync::daemon
