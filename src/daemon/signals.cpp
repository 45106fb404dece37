#include "daemon/signals.hpp"

#include <signal.h>

#include <system_error>
#include <utility>

#include <boost/asio/signal_set.hpp>

namespace cdpsync::daemon {
namespace {

sigset_t handled_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    return set;
}

}  // namespace

void block_daemon_signals() {
    sigset_t set = handled_signals();
    if (int e = pthread_sigmask(SIG_BLOCK, &set, nullptr); e != 0)
        throw std::system_error(e, std::generic_category(), "pthread_sigmask");
}

void unblock_daemon_signals() {
    sigset_t set = handled_signals();
    if (int e = pthread_sigmask(SIG_UNBLOCK, &set, nullptr); e != 0)
        throw std::system_error(e, std::generic_category(), "pthread_sigmask");
}

struct LoopSignals::Impl : std::enable_shared_from_this<Impl> {
    Impl(boost::asio::any_io_executor ex, std::shared_ptr<spdlog::logger> l, SignalHandlers h)
        : set(ex, SIGTERM, SIGINT, SIGHUP), log(std::move(l)), handlers(std::move(h)) {
        set.add(SIGUSR1);
    }

    void wait() {
        set.async_wait([self = shared_from_this()](const boost::system::error_code& ec, int sig) {
            if (ec) return;  // cancelled
            self->handle(sig);
            self->wait();
        });
    }

    void handle(int sig) {
        switch (sig) {
        case SIGTERM:
        case SIGINT: {
            const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
            if (stopping) log->warn("second stop signal ({}): stopping now", name);
            else log->info("{}: stopping", name);
            const bool again = std::exchange(stopping, true);
            if (handlers.stop) handlers.stop(again);
            break;
        }
        case SIGHUP:
            log->info("SIGHUP: reloading the configuration");
            if (handlers.reload) handlers.reload();
            break;
        case SIGUSR1:
            log->info("SIGUSR1: a full resync is next");
            if (handlers.full_resync) handlers.full_resync();
            break;
        default: break;
        }
    }

    boost::asio::signal_set set;
    std::shared_ptr<spdlog::logger> log;
    SignalHandlers handlers;
    bool stopping = false;
};

LoopSignals::LoopSignals(boost::asio::any_io_executor executor, std::shared_ptr<spdlog::logger> log,
                         SignalHandlers handlers)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(log), std::move(handlers))) {
    impl_->wait();
}

LoopSignals::~LoopSignals() { cancel(); }

void LoopSignals::cancel() {
    boost::system::error_code ignored;
    impl_->set.cancel(ignored);
}

}  // namespace cdpsync::daemon
