#include "daemon/signals.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
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

SignalWatcher::SignalWatcher(std::shared_ptr<spdlog::logger> log, std::chrono::milliseconds grace,
                             std::function<void()> on_stop_deadline)
    : log_(std::move(log)), grace_(grace), on_stop_deadline_(std::move(on_stop_deadline)) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    block_daemon_signals();
    thread_ = std::thread([this] { watch(); });
}

SignalWatcher::~SignalWatcher() {
    quit_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(wake_fd_);
}

void SignalWatcher::wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void SignalWatcher::drain() {
    uint64_t value;
    while (::read(wake_fd_, &value, sizeof value) > 0) {
    }
}

void SignalWatcher::watch() {
    const sigset_t set = handled_signals();
    std::chrono::steady_clock::time_point deadline{};
    bool deadline_armed = false;
    while (!quit_) {
        timespec ts{0, 200'000'000};
        const int sig = sigtimedwait(&set, nullptr, &ts);
        if (deadline_armed && busy_ && std::chrono::steady_clock::now() >= deadline) {
            deadline_armed = false;
            log_->warn("the run did not end within {} s of the stop signal", grace_.count() / 1000);
            if (on_stop_deadline_) on_stop_deadline_();
        }
        if (sig < 0) continue;
        switch (sig) {
        case SIGTERM:
        case SIGINT:
            if (stop_.exchange(true)) {
                log_->warn("second stop signal ({}): stopping now", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                if (on_stop_deadline_) on_stop_deadline_();
                break;
            }
            log_->info("{}: stopping{}", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                       busy_ ? " at the next safe point of the run in progress (calls in flight answered; bounded)" : "");
            deadline = std::chrono::steady_clock::now() + grace_;
            deadline_armed = true;
            break;
        case SIGHUP:
            log_->info("SIGHUP: reloading the configuration");
            reload_ = true;
            break;
        case SIGUSR1:
            log_->info("SIGUSR1: a full resync is next");
            full_ = true;
            break;
        default: break;
        }
        wake();
    }
}

}  // namespace cdpsync::daemon
