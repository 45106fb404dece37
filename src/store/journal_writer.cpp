#include "store/journal_writer.hpp"

#include <pqxx/pqxx>

#include "store/outcomes.hpp"

namespace cdpsync::store {

JournalWriter::JournalWriter(const std::string& dsn, const std::string& schema, int64_t run_id, Options options)
    : quoted_schema_([&] {
          if (!is_plain_identifier(schema))
              throw std::invalid_argument("database.schema is not a plain SQL identifier: " + schema);
          return "\"" + schema + "\"";
      }()),
      run_id_(run_id),
      options_(options),
      conn_(connect(dsn)) {
    // As Store: a kill of cdp-sync loses no committed outcome; only a crash of the server can
    // forget the last fraction of a second, whose ops are then sent again (idempotent).
    {
        pqxx::nontransaction tx(*conn_);
        tx.exec0("SET synchronous_commit = off");
    }
    thread_ = std::thread([this] { run(); });
}

JournalWriter::~JournalWriter() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void JournalWriter::rethrow_locked() {
    if (failure_) std::rethrow_exception(failure_);
}

JournalWriter::Take JournalWriter::take(Op& out) {
    std::unique_lock lock(mutex_);
    rethrow_locked();
    if (ops_.empty()) return ops_exhausted_ ? Take::end : Take::not_yet;
    out = std::move(ops_.front());
    ops_.pop_front();
    if (ops_.size() < static_cast<size_t>(options_.read_slice) / 2 && !ops_exhausted_) {
        lock.unlock();
        wake_.notify_one();
    }
    return Take::op;
}

bool JournalWriter::record(Op op, OpOutcome outcome) {
    std::unique_lock lock(mutex_);
    rethrow_locked();
    if (uncommitted_ >= options_.max_uncommitted) return false;
    outcomes_.emplace_back(std::move(op), std::move(outcome));
    ++uncommitted_;
    const bool full = outcomes_.size() >= options_.max_uncommitted;
    lock.unlock();
    if (full) wake_.notify_one();
    return true;
}

bool JournalWriter::drained() {
    std::lock_guard lock(mutex_);
    rethrow_locked();
    return uncommitted_ == 0;
}

int64_t JournalWriter::committed() const {
    std::lock_guard lock(mutex_);
    return committed_;
}

int64_t JournalWriter::batches() const {
    std::lock_guard lock(mutex_);
    return batches_;
}

void JournalWriter::run() {
    const size_t low_water = static_cast<size_t>(options_.read_slice) / 2;
    try {
        for (;;) {
            std::vector<std::pair<Op, OpOutcome>> batch;
            bool read = false;
            int64_t after = 0;
            {
                std::unique_lock lock(mutex_);
                auto needs_read = [&] { return !ops_exhausted_ && ops_.size() < low_water; };
                wake_.wait_for(lock, options_.batch_interval, [&] {
                    return stopping_ || needs_read() || outcomes_.size() >= options_.max_uncommitted;
                });
                if (outcomes_.size() <= options_.max_uncommitted) {
                    batch.swap(outcomes_);
                } else {
                    batch.assign(std::make_move_iterator(outcomes_.begin()),
                                 std::make_move_iterator(outcomes_.begin() + options_.max_uncommitted));
                    outcomes_.erase(outcomes_.begin(), outcomes_.begin() + options_.max_uncommitted);
                }
                read = needs_read() && !stopping_;
                after = last_read_id_;
                if (stopping_ && batch.empty()) return;
            }
            if (!batch.empty()) {
                pqxx::work tx(*conn_);
                detail::record_outcomes(tx, quoted_schema_, batch);
                tx.commit();
                std::lock_guard lock(mutex_);
                uncommitted_ -= batch.size();
                committed_ += static_cast<int64_t>(batch.size());
                ++batches_;
            }
            if (read) {
                pqxx::work tx(*conn_);
                auto slice = detail::pending_ops(tx, quoted_schema_, run_id_, after, options_.read_slice);
                tx.commit();
                std::lock_guard lock(mutex_);
                if (slice.empty()) ops_exhausted_ = true;
                else last_read_id_ = slice.back().id;
                for (auto& op : slice) ops_.push_back(std::move(op));
            }
        }
    } catch (...) {
        std::lock_guard lock(mutex_);
        failure_ = std::current_exception();
    }
}

}  // namespace cdpsync::store
