// The apply's journal off the event loop. A thread with its own PostgreSQL connection
// prefetches the run's pending ops and commits their outcomes in batches (group commit):
// whatever arrived within `batch_interval`, at once when `max_uncommitted` are waiting, each op's
// mirror change in the same transaction as its outcome. The io thread only moves values
// through two bounded buffers under a mutex; it never waits for PostgreSQL.
//
// Duplicate bound: after a kill -9 the next process resends the calls in flight plus the
// outcomes handed over but not yet committed. The latter are at most `max_uncommitted`
// (record() refuses more, and the caller waits), by default uncommitted_bound(max_in_flight)
// = max(16, 4 x max_in_flight), and each is committed within one batch interval (5 ms) plus
// one commit of its arrival. So a kill resends at most max_in_flight + max_uncommitted calls
// (5 x max_in_flight, 20 at 4 in flight, 40 at the default 8), in practice only the calls
// answered in the last few milliseconds.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/store.hpp"

namespace cdpsync::store {

class JournalWriter {
public:
    // The default cap on outcomes not yet committed for an apply with `max_in_flight` calls.
    static size_t uncommitted_bound(int max_in_flight) {
        return std::max<size_t>(16, 4 * static_cast<size_t>(std::max(1, max_in_flight)));
    }

    struct Options {
        std::chrono::milliseconds batch_interval{5};
        size_t max_uncommitted = 32;  // outcomes handed over and not yet committed; also the
                                      // batch size that commits at once without waiting
        int read_slice = 2000;        // pending ops read per query (memory stays flat)
    };

    // Connects (throws pqxx::broken_connection) and starts the thread for run `run_id`.
    JournalWriter(const std::string& dsn, const std::string& schema, int64_t run_id, Options options);
    // Commits what was handed over (unless the connection failed), then stops the thread.
    ~JournalWriter();
    JournalWriter(const JournalWriter&) = delete;
    JournalWriter& operator=(const JournalWriter&) = delete;

    enum class Take { op, not_yet, end };
    // The next pending op by id, if the thread has read it already. Rethrows the thread's
    // failure.
    Take take(Op& out);
    // Hands an outcome over; false when max_uncommitted are waiting (try again later).
    // Rethrows the thread's failure.
    bool record(Op op, OpOutcome outcome);
    // True once every outcome handed over is committed. Rethrows the thread's failure.
    bool drained();

    int64_t committed() const;  // outcomes committed so far
    int64_t batches() const;    // transactions committed so far

private:
    void run();
    void rethrow_locked();

    const std::string quoted_schema_;
    const int64_t run_id_;
    const Options options_;
    std::unique_ptr<pqxx::connection> conn_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Op> ops_;              // prefetched pending ops
    bool ops_exhausted_ = false;
    int64_t last_read_id_ = 0;
    std::vector<std::pair<Op, OpOutcome>> outcomes_;  // handed over, not yet in a transaction
    size_t uncommitted_ = 0;          // handed over, not yet committed (incl. the batch in commit)
    int64_t committed_ = 0;
    int64_t batches_ = 0;
    bool stopping_ = false;
    std::exception_ptr failure_;
    std::thread thread_;
};

}  // namespace cdpsync::store
