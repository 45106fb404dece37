// Apply phase: the journal's pending ops sent through the API (and so its rate limiter),
// max_in_flight at a time on the one io_context thread. Ops come from, and outcomes go to,
// an AsyncJournal: its own thread and connection commit each outcome with its mirror change
// in batches a few milliseconds apart, so no PostgreSQL call stalls the loop. A kill loses at
// most the calls in flight plus the outcomes not yet committed, which the next process sends
// again (store/journal_writer.hpp states the bound).
#include <utility>

#include <exception>
#include <limits>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "sync/async_journal.hpp"
#include "sync/steps.hpp"

namespace cdpsync::sync {

net::awaitable<ApplyResult> Steps::apply(int64_t run_id) {
    ApplyResult out;
    auto executor = co_await net::this_coro::executor;

    const int width = std::max(1, cfg.cdp.max_in_flight);
    AsyncJournal journal(executor, cfg.database.dsn, cfg.database.schema, run_id, width);
    bool stop = false;
    int transient_in_a_row = 0;
    std::exception_ptr thrown;

    auto send = [&](const store::Op& op) -> net::awaitable<cdp::Result<cdp::Done>> {
        cdp::MembershipChange change{op.customer_id, op.group_ids};
        switch (op.kind) {
        case store::OpKind::add: co_return co_await api.customer_add_groups(std::move(change));
        case store::OpKind::remove: co_return co_await api.customer_delete_groups(std::move(change));
        case store::OpKind::set: co_return co_await api.customer_update_groups(std::move(change));
        }
        co_return co_await api.customer_add_groups(std::move(change));
    };

    auto worker = [&]() -> net::awaitable<void> {
        while (!stop && !stop_requested()) {
            auto op = co_await journal.next_op();
            if (!op) break;
            auto result = co_await send(*op);
            store::OpOutcome o;
            if (result.ok()) {
                o.ok = true;
                transient_in_a_row = 0;
            } else {
                const cdp::CallError& e = *result.error;
                if (e.kind == cdp::CallError::Kind::auth || e.kind == cdp::CallError::Kind::cancelled) {
                    // Not this op's fault: leave it pending and stop.
                    if (!stop) out.aborted = "stopped sending: " + e.describe();
                    stop = true;
                    break;
                }
                o.http_status = static_cast<int>(e.http_status);
                o.cdp_code = e.cdp_code;
                o.msg = e.msg.empty() ? e.describe() : e.msg;
                if (o.msg.size() > 300) o.msg = o.msg.substr(0, 300) + "...";
                if (e.transient()) {
                    if (++transient_in_a_row >= kAbortAfterTransientFailures && !stop) {
                        out.aborted = std::to_string(transient_in_a_row) +
                                      " calls in a row failed after their retries (last: " + e.describe() +
                                      "); the rest stay pending";
                        stop = true;
                    }
                } else {
                    transient_in_a_row = 0;
                    o.permanent = op->attempts + 1 >= kPermanentAfterAttempts;
                }
                log.debug("op {} failed: {}", op->id, e.describe());
            }
            co_await journal.record(std::move(*op), std::move(o));
        }
    };

    int running = width;
    net::steady_timer all_done(executor, net::steady_timer::time_point::max());
    for (int i = 0; i < width; ++i)
        net::co_spawn(executor, worker(), [&](std::exception_ptr e) {
            if (e && !thrown) {
                thrown = e;
                stop = true;
            }
            if (--running == 0) all_done.cancel();
        });
    while (running > 0) {
        boost::system::error_code ec;
        co_await all_done.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    co_await journal.drain();
    if (thrown) std::rethrow_exception(thrown);
    if (stop_requested() && store.op_totals(run_id).pending > 0) throw Interrupted();
    co_return out;
}

}  // namespace cdpsync::sync
