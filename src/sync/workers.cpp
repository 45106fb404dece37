#include "sync/workers.hpp"

#include <exception>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include "http/wakeup.hpp"

namespace cdpsync::sync {

net::awaitable<void> run_workers(int width, const std::function<net::awaitable<void>()>& worker,
                                 const std::function<void()>& on_first_error) {
    auto executor = co_await net::this_coro::executor;
    int running = width;
    std::exception_ptr thrown;
    http::Wakeup all_done(executor);
    for (int i = 0; i < width; ++i)
        net::co_spawn(executor, worker(), [&](std::exception_ptr e) {
            if (e && !thrown) {
                thrown = e;
                if (on_first_error) on_first_error();
            }
            if (--running == 0) all_done.notify_all();
        });
    while (running > 0) co_await all_done.wait();
    if (thrown) std::rethrow_exception(thrown);
}

}  // namespace cdpsync::sync
