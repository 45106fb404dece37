// The DB lane: one thread that owns every use of the engine's store::Session (its one
// PostgreSQL connection) while an async step runs, so no SQL blocks the io_context that
// carries the HTTP calls, the rate limiter's timers and the deadlines.
//
// Work runs in FIFO order on the one connection: what a coroutine hands over first is
// committed first (an outcome before the split or breaker change that follows it), and no
// ordering between connections exists to get wrong.
//
// run() awaits a result (or the exception, rethrown on the caller's executor). post() hands
// work over without waiting; a posted job that throws fails the lane: every later job, run()
// or post(), fails with that first exception (PostgreSQL died: the step ends with it). A
// run() that throws only throws to its caller.
#pragma once

#include <utility>  // before awaitable.hpp (GCC 12)

#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <type_traits>
#include <variant>

#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "store/session.hpp"

namespace cdpsync::sync {

namespace net = boost::asio;

class DbLane {
public:
    explicit DbLane(store::Session& store) : store_(store) {}
    ~DbLane() { pool_.join(); }  // every job handed over runs (or fails) before the lane goes
    DbLane(const DbLane&) = delete;
    DbLane& operator=(const DbLane&) = delete;

    // `work(store)` on the lane, after everything handed over before; its result (or
    // exception) on the awaiting coroutine's executor.
    template <class F>
    auto run(F work) -> net::awaitable<std::invoke_result_t<F&, store::Session&>> {
        using T = std::invoke_result_t<F&, store::Session&>;
        if constexpr (std::is_void_v<T>) {
            // Named: GCC 12 miscompiles temporaries that live across a co_await.
            auto valued = [work = std::move(work)](store::Session& s) mutable {
                work(s);
                return std::monostate{};
            };
            co_await run(std::move(valued));
        } else {
            // Tracked: the caller's io_context runs until the answer is back.
            auto caller = net::prefer(co_await net::this_coro::executor, net::execution::outstanding_work.tracked);
            // The initiation is named: GCC 12 miscompiles temporaries that live across a co_await.
            auto start = [this, caller, work = std::move(work)](auto handler) mutable {
                net::post(pool_, [this, caller, work = std::move(work), handler = std::move(handler)]() mutable {
                    std::optional<T> value;
                    std::exception_ptr error = guarded([&] { value.emplace(work(store_)); }, false);
                    net::post(caller, [handler = std::move(handler), error, value = std::move(value)]() mutable {
                        handler(error, std::move(value));
                    });
                });
            };
            std::optional<T> out =
                co_await net::async_initiate<decltype(net::use_awaitable), void(std::exception_ptr, std::optional<T>)>(
                    std::move(start), net::use_awaitable);
            co_return std::move(*out);
        }
    }

    // `work(store)` on the lane, not awaited; a throw fails the lane (see above). `done`
    // (when set) then runs on the lane thread with the job's exception, or the lane's failure
    // when the job did not run, or null.
    void post(std::function<void(store::Session&)> work, std::function<void(std::exception_ptr)> done = {});

    // Every job handed over so far has run; rethrows the lane's failure.
    net::awaitable<void> flush();

    // Blocks the calling thread (never a coroutine's) until every job handed over has run:
    // the engine's thread uses the store again only after this.
    void wait_idle();

private:
    // Runs `f` unless the lane failed; the lane's or f's exception, or null. A throw of f
    // fails the lane when `fails_lane`.
    template <class F>
    std::exception_ptr guarded(F&& f, bool fails_lane) {
        if (auto failed = failure()) return failed;
        try {
            f();
            return nullptr;
        } catch (...) {
            if (fails_lane) fail(std::current_exception());
            return std::current_exception();
        }
    }
    std::exception_ptr failure();
    void fail(std::exception_ptr e);

    store::Session& store_;
    std::mutex mutex_;            // guards failure_ (read by the lane thread only, today)
    std::exception_ptr failure_;  // the first exception of a job; the lane is dead after it
    net::thread_pool pool_{1};
};

}  // namespace cdpsync::sync
