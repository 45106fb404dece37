#include "sync/db_lane.hpp"

#include <future>

namespace cdpsync::sync {

void DbLane::post(std::function<void(store::Session&)> work, std::function<void(std::exception_ptr)> done) {
    net::post(pool_, [this, work = std::move(work), done = std::move(done)] {
        std::exception_ptr error = guarded([&] { work(store_); }, true);
        if (done) done(error);
    });
}

void DbLane::wait_idle() {
    std::promise<void> idle;
    net::post(pool_, [&idle] { idle.set_value(); });
    idle.get_future().wait();
}

net::awaitable<void> DbLane::flush() {
    co_await run([](store::Session&) {});
}

std::exception_ptr DbLane::failure() {
    std::lock_guard lock(mutex_);
    return failure_;
}

void DbLane::fail(std::exception_ptr e) {
    std::lock_guard lock(mutex_);
    if (!failure_) failure_ = std::move(e);
}

}  // namespace cdpsync::sync
