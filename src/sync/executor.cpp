// Apply phase: the journal's pending ops sent through the API (and so its rate limiter),
// max_in_flight at a time on the one io_context thread. Each outcome is committed to the
// journal, with the mirror change, as soon as the call returns: a kill loses at most the
// calls in flight, which the next process sends again.
//
// A refusal is judged (refusal.cpp) before it counts as a failure. Failures that look like
// an outage (kOutageAfterSameFailures in a row failing the same way) are held back unrecorded
// and, when the streak completes, dropped: the ops stay pending, uncharged, the circuit
// breaker opens and the apply stops. The next apply probes with one op first.
#include <utility>

#include <deque>
#include <exception>
#include <map>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "sync/steps.hpp"

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

class Applier {
public:
    Applier(Steps& steps, int64_t run_id) : s_(steps), run_id_(run_id) {}

    net::awaitable<ApplyResult> run();

private:
    // What became of one op, for the caller (the probe, the streak).
    enum class Sent { done, resolved, failed, stop };

    std::optional<store::Op> next();
    net::awaitable<cdp::Result<cdp::Done>> send(const store::Op& op);
    net::awaitable<Sent> handle(store::Op op);
    net::awaitable<Sent> on_refusal(const store::Op& op, const cdp::CallError& e);
    Sent on_failure(const store::Op& op, const cdp::CallError& e, store::OpOutcome o);
    void on_sent_ok(const store::Op& op);
    void split(const store::Op& op);
    void record(const store::Op& op, const store::OpOutcome& o);
    void flush_streak();
    net::awaitable<bool> probe();
    net::awaitable<void> worker();
    net::awaitable<void> run_workers();
    void open_breaker(const std::string& why);

    struct SplitParent {
        int halves_left = 2;
        size_t largest = 0;
    };

    Steps& s_;
    int64_t run_id_;
    ApplyResult out_;
    std::deque<store::Op> queue_;
    int64_t last_id_ = 0;
    bool exhausted_ = false;
    bool stop_ = false;
    std::exception_ptr thrown_;
    std::set<int64_t> managed_;  // owns_all: group ids cdp-sync manages (the rest are kept)
    std::optional<FailureKey> streak_key_;
    std::vector<std::pair<store::Op, store::OpOutcome>> streak_;  // failed ops not yet recorded
    int failures_in_a_row_ = 0;
    std::map<int64_t, int64_t> split_child_;      // op id -> the op it was split from
    std::map<int64_t, SplitParent> split_parent_;  // split op id -> its halves' progress
};

// Ops are read from the journal in slices, so memory does not grow with the plan.
std::optional<store::Op> Applier::next() {
    if (queue_.empty() && !exhausted_) {
        auto slice = s_.store.pending_ops(run_id_, last_id_, 1000);
        if (slice.empty()) exhausted_ = true;
        else last_id_ = slice.back().id;
        for (auto& op : slice) queue_.push_back(std::move(op));
    }
    if (queue_.empty()) return std::nullopt;
    store::Op op = std::move(queue_.front());
    queue_.pop_front();
    return op;
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

// The one place an outcome is written (the journal and, when done, the mirror).
void Applier::record(const store::Op& op, const store::OpOutcome& o) {
    s_.store.record_op(op, o);
}

void Applier::flush_streak() {
    for (const auto& [op, o] : streak_) record(op, o);
    streak_.clear();
    streak_key_.reset();
}

net::awaitable<Applier::Sent> Applier::handle(store::Op op) {
    if (op.kind == store::OpKind::set && s_.cfg.sync.owns_all_static_groups) {
        std::string error;
        auto widened = co_await s_.keep_unmanaged(op, managed_, error);
        if (!widened) {
            store::OpOutcome o;
            o.msg = error;
            o.retry_in = op_backoff(op.attempts + 1);
            record(op, o);
            co_return Sent::failed;
        }
        op = std::move(*widened);
    }
    auto result = co_await send(op);
    if (result.has_value()) {
        on_sent_ok(op);
        co_return Sent::done;
    }
    const cdp::CallError& e = result.error();
    if (e.kind == cdp::CallError::Kind::auth || e.kind == cdp::CallError::Kind::cancelled) {
        // Not this op's fault: leave it pending and stop.
        if (!stop_) out_.aborted = "stopped sending: " + e.describe();
        stop_ = true;
        co_return Sent::stop;
    }
    co_return co_await on_refusal(op, e);
}

void Applier::on_sent_ok(const store::Op& op) {
    flush_streak();
    failures_in_a_row_ = 0;
    store::OpOutcome o;
    o.ok = true;
    record(op, o);
    // Both halves of a split went through: the CDP takes lists of that many groups.
    auto child = split_child_.find(op.id);
    if (child == split_child_.end()) return;
    auto& parent = split_parent_[child->second];
    parent.largest = std::max(parent.largest, op.group_ids.size());
    if (--parent.halves_left == 0) {
        s_.store.learn_group_cap(static_cast<int>(parent.largest));
        s_.log.info("the CDP took {} groups per call after refusing more: planning with that cap", parent.largest);
    }
}

net::awaitable<Applier::Sent> Applier::on_refusal(const store::Op& op, const cdp::CallError& e) {
    const Refusal decision = co_await s_.judge_refusal(op, e);
    s_.log.debug("op {} refused ({}): {}", op.id, to_string(decision), e.describe());
    store::OpOutcome o = failure_outcome(e);
    switch (decision) {
    case Refusal::done:
        on_sent_ok(op);
        co_return Sent::resolved;
    case Refusal::split:
        flush_streak();
        split(op);
        co_return Sent::resolved;
    case Refusal::permanent:
        flush_streak();
        o.permanent = true;
        o.retry_in = permanent_wait(s_.cfg);
        record(op, o);
        co_return Sent::resolved;
    case Refusal::group_missing:
        flush_streak();
        for (int64_t gid : op.group_ids) s_.store.flag_group_recheck(gid);
        o.retry_in = op_backoff(op.attempts + 1);
        record(op, o);
        co_return Sent::resolved;
    case Refusal::retry_later: break;
    }
    co_return on_failure(op, e, std::move(o));
}

// A failure to retry later: held back while it may be part of an outage. A refusal waits its
// backoff; a transient failure (already retried with backoff within the call) goes again on
// the next run.
Applier::Sent Applier::on_failure(const store::Op& op, const cdp::CallError& e, store::OpOutcome o) {
    if (!e.transient()) o.retry_in = op_backoff(op.attempts + 1);
    const FailureKey key = key_of(e);
    if (streak_key_ && !(*streak_key_ == key)) flush_streak();
    streak_key_ = key;
    streak_.emplace_back(op, std::move(o));
    ++failures_in_a_row_;
    if (static_cast<int>(streak_.size()) >= kOutageAfterSameFailures ||
        failures_in_a_row_ >= kAbortAfterTransientFailures) {
        open_breaker(std::to_string(failures_in_a_row_) + " ops in a row failed (last: " + e.describe() + ")");
        streak_.clear();  // an outage: not those ops' fault, they stay pending
        streak_key_.reset();
    }
    return Sent::failed;
}

void Applier::open_breaker(const std::string& why) {
    if (!stop_) out_.aborted = "the CDP looks down: " + why + "; the rest stay pending, the next run probes first";
    stop_ = true;
    if (s_.store.set_breaker(store::Breaker::open, why)) s_.log.warn("circuit breaker open: {}", why);
}

void Applier::split(const store::Op& op) {
    auto parts = s_.store.split_op(op, halves(op.group_ids));
    split_parent_[op.id] = SplitParent{};
    // Front of the queue, in order, so the halves go before the ops read later.
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        split_child_[it->id] = op.id;
        queue_.push_front(*it);
    }
}

net::awaitable<void> Applier::worker() {
    while (!stop_ && !s_.stop_requested()) {
        auto op = next();
        if (!op) break;
        co_await handle(std::move(*op));
    }
}

// The breaker is not closed: one op alone. True when the CDP answered it in any way but the
// failure that opened the breaker (or any failure to retry later).
net::awaitable<bool> Applier::probe() {
    if (s_.store.set_breaker(store::Breaker::half_open, "probing with one op"))
        s_.log.info("circuit breaker half-open: probing the CDP with one op");
    auto op = next();
    if (!op) co_return true;
    const store::Op probe_op = *op;
    const Sent sent = co_await handle(std::move(*op));
    if (sent == Sent::stop) co_return false;
    if (sent == Sent::failed && !streak_.empty()) {
        streak_.clear();  // not charged: the CDP is still down
        streak_key_.reset();
        open_breaker("the probe (op " + std::to_string(probe_op.id) + ") failed too");
        co_return false;
    }
    flush_streak();
    if (s_.store.set_breaker(store::Breaker::closed, "")) s_.log.info("circuit breaker closed: the CDP answers again");
    co_return true;
}

net::awaitable<void> Applier::run_workers() {
    auto executor = co_await net::this_coro::executor;
    const int width = std::max(1, s_.cfg.cdp.max_in_flight);
    int running = width;
    net::steady_timer all_done(executor, net::steady_timer::time_point::max());
    for (int i = 0; i < width; ++i)
        net::co_spawn(executor, worker(), [&](std::exception_ptr e) {
            if (e && !thrown_) {
                thrown_ = e;
                stop_ = true;
            }
            if (--running == 0) all_done.cancel();
        });
    while (running > 0) {
        boost::system::error_code ec;
        co_await all_done.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
}

net::awaitable<ApplyResult> Applier::run() {
    if (s_.cfg.sync.owns_all_static_groups)
        for (const auto& [name, g] : s_.store.group_map())
            if (g.group_id) managed_.insert(*g.group_id);
    bool go_on = true;
    if (s_.store.cdp_state().breaker != store::Breaker::closed) go_on = co_await probe();
    if (go_on) co_await run_workers();
    if (thrown_) std::rethrow_exception(thrown_);
    if (!stop_) flush_streak();  // fewer than an outage's worth at the end: plain failures
    if (s_.stop_requested() && s_.store.op_totals(run_id_).pending > 0) throw Interrupted();
    co_return out_;
}

}  // namespace

net::awaitable<ApplyResult> Steps::apply(int64_t run_id) {
    Applier applier(*this, run_id);
    co_return co_await applier.run();
}

}  // namespace cdpsync::sync
