// Signals. The daemon takes them on its event loop (LoopSignals, a net::signal_set); a
// one-shot run of the CLI (`run --once`, `resync`) on a thread of its own (SignalWatcher,
// sigtimedwait), turned into flags the run reads.
//
// | signal          | effect                                                               |
// |-----------------|----------------------------------------------------------------------|
// | SIGTERM, SIGINT | stop: no new runs; a run in progress may finish within the grace;    |
// |                 | a second one stops at once                                           |
// | SIGHUP          | reload the configuration                                             |
// | SIGUSR1         | a full resync as the next run                                        |
//
// block_daemon_signals() first thing in main: only the thread that takes them (the event
// loop, or SignalWatcher's) has them unblocked.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include <boost/asio/any_io_executor.hpp>
#include <spdlog/logger.h>

namespace cdpsync::daemon {

// Blocks the daemon's signals in the calling thread and every thread it starts later. Call
// first thing in main, before anything starts a thread (spdlog's flusher does): a thread
// that does not block them would take the default action, which ends the process.
void block_daemon_signals();
// Unblocks them in the calling thread (the daemon's event loop thread, once every other
// thread has started).
void unblock_daemon_signals();

// The daemon's signals, handled on its event loop.
struct SignalHandlers {
    std::function<void(bool again)> stop;  // SIGTERM, SIGINT; again: not the first one
    std::function<void()> reload;          // SIGHUP
    std::function<void()> full_resync;     // SIGUSR1
};

class LoopSignals {
public:
    LoopSignals(boost::asio::any_io_executor executor, std::shared_ptr<spdlog::logger> log, SignalHandlers handlers);
    ~LoopSignals();
    LoopSignals(const LoopSignals&) = delete;
    LoopSignals& operator=(const LoopSignals&) = delete;
    void cancel();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

class SignalWatcher {
public:
    // `on_stop_deadline` runs on the watcher thread when a stop was asked while `busy()` and
    // the work did not end within `grace`, or on a second stop signal.
    SignalWatcher(std::shared_ptr<spdlog::logger> log, std::chrono::milliseconds grace,
                  std::function<void()> on_stop_deadline);
    ~SignalWatcher();
    SignalWatcher(const SignalWatcher&) = delete;
    SignalWatcher& operator=(const SignalWatcher&) = delete;

    bool stop_requested() const { return stop_.load(); }
    bool take_reload() { return reload_.exchange(false); }
    bool take_full_resync() { return full_.exchange(false); }
    // Readable after any signal; drain() empties it.
    int wake_fd() const { return wake_fd_; }
    void drain();
    // Wakes the loop's wait (used by tests and by other threads).
    void wake();
    // The loop says when it is inside a run (the grace applies only then).
    void set_busy(bool busy) { busy_.store(busy); }
    std::atomic<bool>& stop_flag() { return stop_; }

private:
    void watch();

    std::shared_ptr<spdlog::logger> log_;
    std::chrono::milliseconds grace_;
    std::function<void()> on_stop_deadline_;
    std::atomic<bool> stop_{false}, reload_{false}, full_{false}, busy_{false}, quit_{false};
    int wake_fd_ = -1;
    std::thread thread_;
};

}  // namespace cdpsync::daemon
