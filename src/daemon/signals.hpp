// Signals, taken on an event loop (LoopSignals, a net::signal_set): the daemon's, or the
// loop a one-shot run of the CLI (`run --once`, `resync`) waits on while its engine works.
//
// | signal          | effect                                                               |
// |-----------------|----------------------------------------------------------------------|
// | SIGTERM, SIGINT | stop: no new runs; a run in progress may finish within the grace;    |
// |                 | a second one stops at once                                           |
// | SIGHUP          | reload the configuration                                             |
// | SIGUSR1         | a full resync as the next run                                        |
//
// block_daemon_signals() first thing in main: only the thread that takes them (the event
// loop's) has them unblocked.
#pragma once

#include <functional>
#include <memory>

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

}  // namespace cdpsync::daemon
