#include "sync/async_journal.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace cdpsync::sync {

namespace net = boost::asio;

AsyncJournal::AsyncJournal(net::any_io_executor executor, const std::string& dsn, const std::string& schema,
                           int64_t run_id, int max_in_flight)
    : executor_(std::move(executor)),
      writer_(dsn, schema, run_id, {.max_uncommitted = store::JournalWriter::uncommitted_bound(max_in_flight)}) {}

net::awaitable<void> AsyncJournal::pause() {
    net::steady_timer timer(executor_, kPoll);
    co_await timer.async_wait(net::use_awaitable);
}

net::awaitable<std::optional<store::Op>> AsyncJournal::next_op() {
    store::Op op;
    for (;;) {
        switch (writer_.take(op)) {
        case store::JournalWriter::Take::op: co_return op;
        case store::JournalWriter::Take::end: co_return std::nullopt;
        case store::JournalWriter::Take::not_yet: break;
        }
        co_await pause();
    }
}

net::awaitable<void> AsyncJournal::record(store::Op op, store::OpOutcome outcome) {
    // record() moves from its arguments only when it accepts them.
    while (!writer_.record(op, outcome)) co_await pause();
}

net::awaitable<void> AsyncJournal::drain() {
    while (!writer_.drained()) co_await pause();
}

}  // namespace cdpsync::sync
