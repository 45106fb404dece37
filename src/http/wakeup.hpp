// "Something changed: look again" for coroutines on one executor. wait() suspends until
// the next notify_all(); a waiter re-checks its condition in a loop, since a notification
// made while nobody waits is not remembered. (A steady_timer that never expires, cancelled
// as a latch: the one place this idiom is written.)
#pragma once

#include <utility>  // before awaitable.hpp (GCC 12)

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace cdpsync::http {

class Wakeup {
public:
    explicit Wakeup(const boost::asio::any_io_executor& executor)
        : timer_(executor, boost::asio::steady_timer::time_point::max()) {}

    boost::asio::awaitable<void> wait() {
        boost::system::error_code ignored;  // operation_aborted: the wake-up itself
        co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
    }
    // Wakes every coroutine waiting now.
    void notify_all() { timer_.cancel(); }

private:
    boost::asio::steady_timer timer_;
};

}  // namespace cdpsync::http
