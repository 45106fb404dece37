// Apply phase: the journal's pending ops sent through the API (and so its rate limiter),
// max_in_flight at a time on the one io_context thread. The journal is read and written
// only through the DB lane (db_lane.hpp), never on that thread: slices of pending ops are
// read ahead, and each outcome is handed over as the call returns and committed, with its
// mirror change, in a group commit (one transaction for every outcome handed over since
// the last). At most uncommitted_outcome_cap(max_in_flight) outcomes wait uncommitted; a
// worker that would exceed it waits for the commit. So a kill -9 makes the next process
// resend at most the calls in flight plus that cap (the duplicate bound).
//
// A refusal is judged (refusal.cpp) before it counts as a failure. Failures that look like
// an outage (kOutageAfterSameFailures in a row failing the same way) are held back unrecorded
// and, when the streak completes, dropped: the ops stay pending, uncharged, the circuit
// breaker opens and the apply stops. The next apply probes with one op first.
#include <utility>

#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "http/wakeup.hpp"
#include "sync/group_commit.hpp"
#include "sync/steps.hpp"
#include "sync/workers.hpp"

namespace cdpsync::sync {
namespace {

// How a failure looks, for telling an outage (the same failure over and over) from refusals.
struct FailureKey {
    bool transient = false;  // every transient failure is the same "way"
    int http_status = 0;
    std::optional<int> cdp_code;
    std::string msg;
    bool operator==(const FailureKey&) const = default;
};

FailureKey key_of(const cdp::CallError& e) {
    if (e.transient()) return {true, 0, std::nullopt, ""};
    return {false, static_cast<int>(e.http_status), e.cdp_code, e.msg};
}

store::OpOutcome failure_outcome(const cdp::CallError& e) {
    store::OpOutcome o;
    o.http_status = static_cast<int>(e.http_status);
    o.cdp_code = e.cdp_code;
    o.msg = e.msg.empty() ? e.describe() : e.msg;
    if (o.msg.size() > 300) o.msg = o.msg.substr(0, 300) + "...";
    return o;
}

// Two halves of a group list (a, b, c -> a | b, c).
std::vector<std::vector<int64_t>> halves(const std::vector<int64_t>& ids) {
    const auto mid = ids.begin() + static_cast<std::ptrdiff_t>(ids.size() / 2);
    return {std::vector<int64_t>(ids.begin(), mid), std::vector<int64_t>(mid, ids.end())};
}

using Outcome = std::pair<store::Op, store::OpOutcome>;

void record_outcomes(store::Session& store, std::vector<Outcome>& batch) { store.journal.record_ops(batch); }

class Applier {
public:
    Applier(Steps& steps, int64_t run_id, const net::any_io_executor& io)
        : s_(steps),
          run_id_(run_id),
          commits_(steps.db, io, uncommitted_outcome_cap(steps.cfg.cdp.max_in_flight), record_outcomes),
          fetched_(io) {}

    net::awaitable<ApplyResult> run();

private:
    // What became of one op, for the caller (the probe, the streak).
    enum class Sent { done, resolved, failed, stop };

    net::awaitable<std::optional<store::Op>> next();
    net::awaitable<void> read_slice();
    net::awaitable<cdp::Result<cdp::Done>> send(const store::Op& op);
    net::awaitable<Sent> handle(store::Op op);
    net::awaitable<Sent> on_refusal(const store::Op& op, const cdp::CallError& e);
    net::awaitable<Sent> on_failure(const store::Op& op, const cdp::CallError& e, store::OpOutcome o);
    net::awaitable<void> on_sent_ok(const store::Op& op);
    net::awaitable<void> split(const store::Op& op);
    net::awaitable<void> record(const store::Op& op, const store::OpOutcome& o);
    net::awaitable<void> flush_streak();
    net::awaitable<bool> probe();
    net::awaitable<void> worker();
    net::awaitable<void> run_workers();
    net::awaitable<void> set_breaker(store::Breaker state, const std::string& why, const char* log_line);
    net::awaitable<void> open_breaker(const std::string& why);

    struct SplitParent {
        int halves_left = 2;
        size_t largest = 0;
    };

    Steps& s_;
    int64_t run_id_;
    GroupCommit<Outcome> commits_;
    ApplyResult out_;
    std::deque<store::Op> queue_;
    int64_t last_id_ = 0;
    bool exhausted_ = false;
    bool reading_ = false;       // a slice is being read (one at a time)
    http::Wakeup fetched_;  // when a slice read ends: the waiters look again
    bool stop_ = false;
    std::set<int64_t> managed_;  // owns_all: group ids cdp-sync manages (the rest are kept)
    std::optional<FailureKey> streak_key_;
    std::vector<Outcome> streak_;  // failed ops not yet recorded
    int failures_in_a_row_ = 0;
    std::map<int64_t, int64_t> split_child_;      // op id -> the op it was split from
    std::map<int64_t, SplitParent> split_parent_;  // split op id -> its halves' progress
};

// Ops are read from the journal in slices, so memory does not grow with the plan; the next
// slice is read while the queue still holds kReadAheadAt ops, so the workers do not wait.
constexpr int kSlice = 1000;
constexpr size_t kReadAheadAt = 250;

net::awaitable<std::optional<store::Op>> Applier::next() {
    for (;;) {
        if (stop_) co_return std::nullopt;
        if (queue_.size() <= kReadAheadAt && !exhausted_ && !reading_) co_await read_slice();
        if (!queue_.empty()) {
            store::Op op = std::move(queue_.front());
            queue_.pop_front();
            co_return op;
        }
        if (exhausted_ && !reading_) co_return std::nullopt;
        co_await fetched_.wait();
    }
}

net::awaitable<void> Applier::read_slice() {
    reading_ = true;
    const int64_t run_id = run_id_;
    const int64_t after = last_id_;
    std::vector<store::Op> slice;
    std::exception_ptr failed;
    try {
        slice = co_await s_.db.run([=](store::Session& st) { return st.journal.pending_ops(run_id, after, kSlice); });
    } catch (...) {
        failed = std::current_exception();
    }
    reading_ = false;
    fetched_.notify_all();
    if (failed) std::rethrow_exception(failed);
    if (slice.empty()) exhausted_ = true;
    else last_id_ = slice.back().id;
    for (auto& op : slice)
        // A split's halves (newer ids) are queued, or sent, already.
        if (!split_child_.count(op.id)) queue_.push_back(std::move(op));
}

net::awaitable<cdp::Result<cdp::Done>> Applier::send(const store::Op& op) {
    cdp::MembershipChange change{op.customer_id, op.group_ids};
    switch (op.kind) {
    case store::OpKind::add: co_return co_await s_.api.customer_add_groups(std::move(change));
    case store::OpKind::remove: co_return co_await s_.api.customer_delete_groups(std::move(change));
    case store::OpKind::set: co_return co_await s_.api.customer_update_groups(std::move(change));
    }
    co_return co_await s_.api.customer_add_groups(std::move(change));
}

// The one place an outcome is written (the journal and, when done, the mirror): handed over
// to the group commit.
net::awaitable<void> Applier::record(const store::Op& op, const store::OpOutcome& o) {
    Outcome outcome{op, o};
    co_await commits_.hand_over(std::move(outcome));
}

net::awaitable<void> Applier::flush_streak() {
    auto held = std::move(streak_);
    streak_.clear();
    streak_key_.reset();
    for (const auto& [op, o] : held) co_await record(op, o);
}

net::awaitable<Applier::Sent> Applier::handle(store::Op op) {
    if (op.kind == store::OpKind::set && s_.cfg.sync.owns_all_static_groups) {
        std::string error;
        auto widened = co_await s_.keep_unmanaged(op, managed_, error);
        if (!widened) {
            store::OpOutcome o;
            o.msg = error;
            o.retry_in = op_backoff(op.attempts + 1);
            co_await record(op, o);
            co_return Sent::failed;
        }
        op = std::move(*widened);
    }
    auto result = co_await send(op);
    if (result.has_value()) {
        co_await on_sent_ok(op);
        co_return Sent::done;
    }
    const cdp::CallError& e = result.error();
    if (e.kind == cdp::CallError::Kind::auth || e.kind == cdp::CallError::Kind::cancelled) {
        // Not this op's fault: leave it pending and stop.
        const auto cause = e.kind == cdp::CallError::Kind::auth ? Abort::Cause::auth_refused : Abort::Cause::calls_cancelled;
        if (!stop_) out_.aborted = Abort{cause, "stopped sending: " + e.describe()};
        stop_ = true;
        co_return Sent::stop;
    }
    co_return co_await on_refusal(op, e);
}

net::awaitable<void> Applier::on_sent_ok(const store::Op& op) {
    co_await flush_streak();
    failures_in_a_row_ = 0;
    store::OpOutcome o;
    o.ok = true;
    co_await record(op, o);
    // Both halves of a split went through: the CDP takes lists of that many groups.
    auto child = split_child_.find(op.id);
    if (child == split_child_.end()) co_return;
    auto& parent = split_parent_[child->second];
    parent.largest = std::max(parent.largest, op.group_ids.size());
    if (--parent.halves_left == 0) {
        const int cap = static_cast<int>(parent.largest);
        co_await s_.db.run([cap](store::Session& st) { st.cdp.learn_group_cap(cap); });
        s_.log.info("the CDP took {} groups per call after refusing more: planning with that cap", parent.largest);
    }
}

net::awaitable<Applier::Sent> Applier::on_refusal(const store::Op& op, const cdp::CallError& e) {
    const Refusal decision = co_await s_.judge_refusal(op, e);
    s_.log.debug("op {} refused ({}): {}", op.id, to_string(decision), e.describe());
    store::OpOutcome o = failure_outcome(e);
    switch (decision) {
    case Refusal::done:
        co_await on_sent_ok(op);
        co_return Sent::resolved;
    case Refusal::split:
        co_await flush_streak();
        co_await split(op);
        co_return Sent::resolved;
    case Refusal::permanent:
        co_await flush_streak();
        o.permanent = true;
        o.retry_in = permanent_wait(s_.cfg);
        co_await record(op, o);
        co_return Sent::resolved;
    case Refusal::group_missing: {
        co_await flush_streak();
        auto flag_recheck = [groups = op.group_ids](store::Session& st) {
            for (int64_t gid : groups) st.groups.flag_group_recheck(gid);
        };
        co_await s_.db.run(std::move(flag_recheck));
        o.retry_in = op_backoff(op.attempts + 1);
        co_await record(op, o);
        co_return Sent::resolved;
    }
    case Refusal::retry_later: break;
    }
    co_return co_await on_failure(op, e, std::move(o));
}

// A failure to retry later: held back while it may be part of an outage. A refusal waits its
// backoff; a transient failure (already retried with backoff within the call) goes again on
// the next run.
net::awaitable<Applier::Sent> Applier::on_failure(const store::Op& op, const cdp::CallError& e,
                                                  store::OpOutcome o) {
    if (!e.transient()) o.retry_in = op_backoff(op.attempts + 1);
    const FailureKey key = key_of(e);
    if (streak_key_ && !(*streak_key_ == key)) co_await flush_streak();
    streak_key_ = key;
    streak_.emplace_back(op, std::move(o));
    ++failures_in_a_row_;
    if (static_cast<int>(streak_.size()) >= kOutageAfterSameFailures ||
        failures_in_a_row_ >= kAbortAfterTransientFailures) {
        streak_.clear();  // an outage: not those ops' fault, they stay pending
        streak_key_.reset();
        const std::string why =
            std::to_string(failures_in_a_row_) + " ops in a row failed (last: " + e.describe() + ")";
        co_await open_breaker(why);
    }
    co_return Sent::failed;
}

// The breaker's state, after every outcome handed over before (the lane is FIFO); logs
// `log_line` when the state changed.
net::awaitable<void> Applier::set_breaker(store::Breaker state, const std::string& why, const char* log_line) {
    auto set = [state, why](store::Session& st) { return st.cdp.set_breaker(state, why); };
    const bool changed = co_await s_.db.run(std::move(set));
    if (changed) s_.log.info("{}", log_line);
}

net::awaitable<void> Applier::open_breaker(const std::string& why) {
    if (!stop_)
        out_.aborted = Abort{Abort::Cause::cdp_down,
                             "the CDP looks down: " + why + "; the rest stay pending, the next run probes first"};
    stop_ = true;
    auto set = [why](store::Session& st) { return st.cdp.set_breaker(store::Breaker::open, why); };
    const bool changed = co_await s_.db.run(std::move(set));
    if (changed) s_.log.warn("circuit breaker open: {}", why);
}

net::awaitable<void> Applier::split(const store::Op& op) {
    auto split_in_journal = [whole = op](store::Session& st) { return st.journal.split_op(whole, halves(whole.group_ids)); };
    auto parts = co_await s_.db.run(std::move(split_in_journal));
    split_parent_[op.id] = SplitParent{};
    // Front of the queue, in order, so the halves go before the ops read later.
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        split_child_[it->id] = op.id;
        queue_.push_front(*it);
    }
}

net::awaitable<void> Applier::worker() {
    while (!stop_ && !s_.stop_requested()) {
        auto op = co_await next();
        if (!op) break;
        co_await handle(std::move(*op));
    }
}

// The breaker is not closed: one op alone. True when the CDP answered it in any way but the
// failure that opened the breaker (or any failure to retry later).
net::awaitable<bool> Applier::probe() {
    co_await set_breaker(store::Breaker::half_open, "probing with one op",
                         "circuit breaker half-open: probing the CDP with one op");
    auto op = co_await next();
    if (!op) co_return true;
    const store::Op probe_op = *op;
    const Sent sent = co_await handle(std::move(*op));
    if (sent == Sent::stop) co_return false;
    if (sent == Sent::failed && !streak_.empty()) {
        streak_.clear();  // not charged: the CDP is still down
        streak_key_.reset();
        co_await open_breaker("the probe (op " + std::to_string(probe_op.id) + ") failed too");
        co_return false;
    }
    co_await flush_streak();
    co_await set_breaker(store::Breaker::closed, "", "circuit breaker closed: the CDP answers again");
    co_return true;
}

net::awaitable<void> Applier::run_workers() {
    const int width = std::max(1, s_.cfg.cdp.max_in_flight);
    const std::function<net::awaitable<void>()> one = [this] { return worker(); };
    const std::function<void()> stop_all = [this] { stop_ = true; };
    co_await sync::run_workers(width, one, stop_all);
}

net::awaitable<ApplyResult> Applier::run() {
    const store::CdpState cdp = co_await s_.db.run([](store::Session& st) { return st.cdp.cdp_state(); });
    if (s_.cfg.sync.owns_all_static_groups) {
        const auto groups = co_await s_.db.run([](store::Session& st) { return st.groups.group_map(); });
        for (const auto& [name, g] : groups)
            if (g.group_id) managed_.insert(*g.group_id);
    }
    std::exception_ptr failed;
    try {
        bool go_on = true;
        if (cdp.breaker != store::Breaker::closed) go_on = co_await probe();
        if (go_on) co_await run_workers();
        if (!stop_) co_await flush_streak();  // fewer than an outage's worth at the end: plain failures
    } catch (...) {
        failed = std::current_exception();
    }
    co_await commits_.flush();  // even after a throw: what was handed over is committed
    if (failed) std::rethrow_exception(failed);
    const int64_t run_id = run_id_;
    if (s_.stop_requested()) {
        const store::OpTotals totals = co_await s_.db.run([run_id](store::Session& st) { return st.journal.op_totals(run_id); });
        if (totals.pending > 0) throw Interrupted();
    }
    co_return out_;
}

}  // namespace

net::awaitable<ApplyResult> Steps::apply(int64_t run_id) {
    Applier applier(*this, run_id, co_await net::this_coro::executor);
    co_return co_await applier.run();
}

}  // namespace cdpsync::sync
