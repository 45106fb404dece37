// Steps composed of other steps.
#include "sync/steps.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include "http/wakeup.hpp"

namespace cdpsync::sync {

net::awaitable<SnapshotResult> Steps::snapshot_at_once(int64_t snapshot_id, std::vector<store::ManagedGroup> groups,
                                                       int at_once) {
    const size_t width = std::min(groups.size(), static_cast<size_t>(std::max(1, at_once)));
    if (width <= 1) co_return co_await snapshot(snapshot_id, std::move(groups));
    std::vector<std::vector<store::ManagedGroup>> shares(width);
    for (size_t i = 0; i < groups.size(); ++i) shares[i % width].push_back(std::move(groups[i]));
    auto executor = co_await net::this_coro::executor;
    size_t running = width;
    http::Wakeup all_done(executor);
    std::exception_ptr thrown;
    SnapshotResult out;
    for (auto& share : shares)
        net::co_spawn(executor, snapshot(snapshot_id, std::move(share)), [&](std::exception_ptr e, SnapshotResult r) {
            if (e && !thrown) thrown = e;
            out.pages += r.pages;
            for (auto& issue : r.errors) out.errors.push_back(std::move(issue));
            out.failed.insert(r.failed.begin(), r.failed.end());
            out.unreliable.insert(r.unreliable.begin(), r.unreliable.end());
            if (--running == 0) all_done.notify_all();
        });
    while (running > 0) co_await all_done.wait();
    if (thrown) std::rethrow_exception(thrown);
    co_return out;
}

}  // namespace cdpsync::sync
