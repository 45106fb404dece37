// The apply's side of store::JournalWriter: awaitables that wait for the writer's buffers on
// a short timer, so the io thread never blocks on PostgreSQL (see journal_writer.hpp for
// the batches and the duplicate bound they imply).
#pragma once

#include <utility>

#include <chrono>
#include <cstdint>
#include <optional>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "store/journal_writer.hpp"

namespace cdpsync::sync {

class AsyncJournal {
public:
    AsyncJournal(boost::asio::any_io_executor executor, const std::string& dsn, const std::string& schema,
                 int64_t run_id, int max_in_flight);

    // The next pending op by id, nullopt when none is left.
    boost::asio::awaitable<std::optional<store::Op>> next_op();
    // Waits only for room among the uncommitted outcomes, never for a commit.
    boost::asio::awaitable<void> record(store::Op op, store::OpOutcome outcome);
    // Waits until every outcome recorded is committed.
    boost::asio::awaitable<void> drain();

private:
    boost::asio::awaitable<void> pause();

    boost::asio::any_io_executor executor_;
    store::JournalWriter writer_;
    static constexpr std::chrono::microseconds kPoll{500};
};

}  // namespace cdpsync::sync
