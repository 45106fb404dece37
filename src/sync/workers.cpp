#include "sync/workers.hpp"

#include <exception>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace cdpsync::sync {

net::awaitable<void> run_workers(int width, const std::function<net::awaitable<void>()>& worker,
                                 const std::function<void()>& on_first_error) {
    auto executor = co_await net::this_coro::executor;
    int running = width;
    std::exception_ptr thrown;
    net::steady_timer all_done(executor, net::steady_timer::time_point::max());
    for (int i = 0; i < width; ++i)
        net::co_spawn(executor, worker(), [&](std::exception_ptr e) {
            if (e && !thrown) {
                thrown = e;
                if (on_first_error) on_first_error();
            }
            if (--running == 0) all_done.cancel();
        });
    while (running > 0) {
        boost::system::error_code ec;
        co_await all_done.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (thrown) std::rethrow_exception(thrown);
}

}  // namespace cdpsync::sync
