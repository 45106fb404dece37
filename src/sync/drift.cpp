// Drift detection between full resyncs: one simpleQuery listing (one call per page of
// groups, or none when the groups phase listed already) gives each group's customerTotal; a
// managed group whose total differs from the mirror's count was changed in the CDP behind
// our back (by hand, or by another system), and is read again through the verified snapshot
// so that this cycle's plan corrects it.
// Drift that keeps the counts equal is left to the periodic full resync.
#include <map>

#include "sync/steps.hpp"

namespace cdpsync::sync {

net::awaitable<DriftResult> Steps::detect_drift(int64_t snapshot_id, std::vector<store::ManagedGroup> managed,
                                                std::set<int64_t> already_read, std::optional<GroupListing> listing) {
    DriftResult out;
    std::vector<int64_t> ids;
    for (const auto& g : managed)
        if (g.group_id > 0 && !already_read.count(g.group_id)) ids.push_back(g.group_id);
    if (ids.empty()) co_return out;

    if (!listing) {
        auto listed = co_await api.query_all_groups();
        if (!listed.has_value()) {
            // Not fatal: the cycle goes on against the mirror, as without the check.
            log.warn("drift check skipped: listing the groups failed: {}", listed.error().describe());
            co_return out;
        }
        listing = GroupListing{std::move(listed.value()), ""};
    }
    std::map<int64_t, int64_t> cdp_total;
    for (const auto& g : listing->groups) cdp_total[g.id] = g.customer_total;
    // Named: GCC 12 miscompiles temporaries that live across a co_await.
    auto count_mirror = [ids](store::Session& st) { return st.mirror.mirror_counts(ids); };
    const auto mirror = co_await db.run(std::move(count_mirror));

    std::vector<store::ManagedGroup> drifted;
    for (const auto& g : managed) {
        auto m = mirror.find(g.group_id);
        auto t = cdp_total.find(g.group_id);
        if (m == mirror.end() || t == cdp_total.end() || t->second == m->second) continue;
        log.info("drift: group '{}' (id {}) holds {} members in the CDP but {} in the mirror: reading it again",
                 g.name, g.group_id, t->second, m->second);
        drifted.push_back(g);
    }
    if (drifted.empty()) co_return out;
    out.corrections = static_cast<int64_t>(drifted.size());
    out.snapshot = co_await snapshot(snapshot_id, std::move(drifted));
    co_return out;
}

}  // namespace cdpsync::sync
