// What a refused membership write means, decided before calling it failed: the CDP may refuse
// a write it already holds (an add resent after a lost reply, a hand edit), a list longer than
// its cap, one bad group among good ones. shared/DESIGN.md: never read more into a reply than
// it says, so the customer's groups are read before the op is judged.
#include <utility>

#include <algorithm>

#include "sync/steps.hpp"

namespace cdpsync::sync {
namespace {

// The CDP already holds what `op` wanted, by the customer's static groups `held`.
bool already_applied(const store::Op& op, const std::vector<cdp::CustomerGroup>& held) {
    std::set<int64_t> ids;
    for (const auto& g : held) ids.insert(g.id);
    auto holds = [&](int64_t gid) { return ids.count(gid) > 0; };
    switch (op.kind) {
    case store::OpKind::add: return std::all_of(op.group_ids.begin(), op.group_ids.end(), holds);
    case store::OpKind::remove: return std::none_of(op.group_ids.begin(), op.group_ids.end(), holds);
    case store::OpKind::set: return ids == std::set<int64_t>(op.group_ids.begin(), op.group_ids.end());
    }
    return false;
}

}  // namespace

const char* to_string(Refusal r) {
    switch (r) {
    case Refusal::done: return "done";
    case Refusal::split: return "split";
    case Refusal::retry_later: return "retry_later";
    case Refusal::permanent: return "permanent";
    case Refusal::group_missing: return "group_missing";
    }
    return "retry_later";
}

std::chrono::seconds op_backoff(int attempts) {
    std::chrono::seconds wait{60};
    for (int i = 1; i < attempts && wait < std::chrono::hours(1); ++i) wait *= 2;
    return std::min<std::chrono::seconds>(wait, std::chrono::hours(1));
}

std::chrono::seconds permanent_wait(const config::Config& cfg) {
    return std::chrono::seconds(static_cast<int64_t>(cfg.sync.permanent_retry_interval_h * 3600));
}

net::awaitable<Refusal> Steps::judge_refusal(const store::Op& op, const cdp::CallError& e) {
    // The API retried it already; what it did is for the next run's plan to find out.
    if (e.transient()) co_return Refusal::retry_later;
    auto held = co_await api.groups_of_customer(op.customer_id, cdp::kStaticGroup);
    if (held.has_value() && already_applied(op, held.value())) co_return Refusal::done;
    if (cdp::is_unknown_customer_msg(e.msg)) co_return Refusal::permanent;
    // A replace cannot be split: each half would remove the other.
    if (op.group_ids.size() > 1 && op.kind != store::OpKind::set) co_return Refusal::split;
    if (cdp::is_unknown_group_msg(e.msg)) co_return Refusal::group_missing;
    if (cdp::is_smart_group_msg(e.msg)) co_return Refusal::permanent;
    co_return Refusal::retry_later;
}

net::awaitable<std::optional<store::Op>> Steps::keep_unmanaged(store::Op op, const std::set<int64_t>& managed,
                                                               std::string& error) {
    auto held = co_await api.groups_of_customer(op.customer_id, cdp::kStaticGroup);
    if (!held.has_value()) {
        error = "not replacing the customer's groups: reading them first failed: " + held.error().describe();
        co_return std::nullopt;
    }
    // The managed groups the plan wants, and every unmanaged group the customer holds now
    // (not the mirror's idea of them, which may be stale).
    std::set<int64_t> ids;
    for (int64_t gid : op.group_ids)
        if (managed.count(gid)) ids.insert(gid);
    for (const auto& g : held.value())
        if (!managed.count(g.id)) ids.insert(g.id);
    op.group_ids.assign(ids.begin(), ids.end());
    co_return op;
}

}  // namespace cdpsync::sync
