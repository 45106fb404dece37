// Group commit through the DB lane: items (apply outcomes, snapshot pages) handed over from
// coroutines on the io_context and written by the lane in batches, one `commit` call (one
// transaction) for every item handed over since the last. At most `cap` items wait
// uncommitted; a coroutine that would exceed it waits, without blocking the io_context,
// until a commit frees room. A failed commit is rethrown by the next hand_over or flush.
//
// Ordering: an item handed over before a later db.run()/post() is committed before that job
// runs (the lane is FIFO and a queued commit takes every item handed over until it runs).
#pragma once

#include <utility>  // before awaitable.hpp (GCC 12)

#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>

#include "http/wakeup.hpp"
#include "sync/db_lane.hpp"

namespace cdpsync::sync {

template <class Item>
class GroupCommit {
public:
    // Runs on the lane thread with the batch, in hand-over order.
    using Commit = std::function<void(store::Session&, std::vector<Item>&)>;

    GroupCommit(DbLane& db, const net::any_io_executor& io, int cap, Commit commit)
        : db_(db), io_(io), cap_(cap), shared_(std::make_shared<Shared>(io, std::move(commit))) {}

    // Hands `item` over (waiting while `cap` items are uncommitted); rethrows a failed commit.
    net::awaitable<void> hand_over(Item item) {
        Shared& sh = *shared_;
        while (sh.uncommitted >= cap_ && !sh.error) co_await sh.room.wait();
        if (sh.error) std::rethrow_exception(sh.error);
        ++sh.uncommitted;
        bool queue_commit = false;
        {
            std::lock_guard lock(sh.mutex);
            sh.handed.push_back(std::move(item));
            queue_commit = !std::exchange(sh.commit_queued, true);
        }
        if (queue_commit) post_commit();
    }

    // Everything handed over is committed; rethrows a failed commit.
    net::awaitable<void> flush() {
        co_await db_.flush();
        if (shared_->error) std::rethrow_exception(shared_->error);
    }

private:
    struct Shared {
        Shared(const net::any_io_executor& io, Commit c)
            : commit(std::move(c)), room(io) {}
        Commit commit;
        std::mutex mutex;  // guards handed and commit_queued (the lane thread takes them)
        std::vector<Item> handed;
        bool commit_queued = false;
        // io_context thread only:
        int uncommitted = 0;
        std::exception_ptr error;
        http::Wakeup room;  // after each commit: the waiters look again
    };

    void post_commit() {
        auto taken = std::make_shared<size_t>(0);
        auto commit = [sh = shared_, taken](store::Session& store) {
            std::vector<Item> batch;
            {
                std::lock_guard lock(sh->mutex);
                batch.swap(sh->handed);
                sh->commit_queued = false;
            }
            *taken = batch.size();
            sh->commit(store, batch);
        };
        auto committed = [sh = shared_, taken, io = io_](std::exception_ptr e) {
            net::post(io, [sh, n = static_cast<int>(*taken), e] {
                sh->uncommitted -= n;
                if (e && !sh->error) sh->error = e;
                sh->room.notify_all();
            });
        };
        db_.post(std::move(commit), std::move(committed));
    }

    DbLane& db_;
    net::any_io_executor io_;
    int cap_;
    std::shared_ptr<Shared> shared_;
};

}  // namespace cdpsync::sync
