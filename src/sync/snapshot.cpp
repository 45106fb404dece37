// Snapshot phase: each group's members paged into the mirror, one transaction per page
// together with its cursor, so a killed snapshot continues at the next unread page.
#include "sync/steps.hpp"

namespace cdpsync::sync {

net::awaitable<SnapshotResult> Steps::snapshot(int64_t snapshot_id, std::vector<store::ManagedGroup> groups) {
    SnapshotResult out;
    std::vector<int64_t> ids;
    for (const auto& g : groups) ids.push_back(g.group_id);
    const int page_size = cfg.cdp.page_size;
    store.snapshot_begin(snapshot_id, ids, page_size);
    auto cursors = store.snapshot_cursors(snapshot_id);
    std::vector<int64_t> customer_ids;
    for (const auto& g : groups) {
        throw_if_stopped();
        auto& c = cursors[g.group_id];
        if (c.done) continue;
        if (c.next_page > 1 && c.page_size != page_size) {
            // Page numbers of another page size do not line up: read this group again.
            log.info("snapshot of group '{}' (id {}): page size changed from {} to {}, restarting it", g.name,
                     g.group_id, c.page_size, page_size);
            store.snapshot_restart_group(snapshot_id, g.group_id, page_size);
            c.next_page = 1;
        }
        if (c.next_page > 1)
            log.info("snapshot of group '{}' (id {}) continues at page {}", g.name, g.group_id, c.next_page);
        // A named handler: GCC 12 miscompiles temporaries that live across a co_await.
        const int64_t group_id = g.group_id;
        int64_t first_page = c.next_page;
        cdp::Api::MemberPageHandler on_page = [&, group_id](int64_t page_number, cdp::Page<cdp::Member>&& page) {
            customer_ids.clear();
            customer_ids.reserve(page.records.size());
            for (const auto& m : page.records) customer_ids.push_back(m.customer_id);
            if (store.snapshot_page(snapshot_id, group_id, page_number, customer_ids)) ++out.pages;
            throw_if_stopped();  // the pager waits for its reads in flight, then rethrows
        };
        auto done = co_await api.for_each_member_page(group_id, std::move(on_page), first_page);
        if (!done.ok()) {
            out.errors.push_back({g.name, "reading the members failed: " + done.error->describe()});
            out.failed.insert(g.group_id);
            continue;
        }
        const int64_t members = store.snapshot_finish_group(snapshot_id, g.group_id);
        log.debug("snapshot of group '{}' (id {}): {} members", g.name, g.group_id, members);
    }
    co_return out;
}

}  // namespace cdpsync::sync
