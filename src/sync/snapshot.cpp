// Snapshot phase: each group's members paged into the mirror, one transaction per page
// together with its cursor, so a killed snapshot continues at the next unread page.
//
// A read is verified: the CDP documents no order for member lists, and other parties change
// groups while we page them, so pages can shift (a member read twice, another never). After
// a pass the distinct ids read are compared with the replies' `total`; a pass whose totals
// moved, that read an id twice, or that was answered for another page than asked, is read
// again (from page 1) up to kMaxReadPasses times. When no pass is consistent the group is
// marked unreliable: its mirror holds the last pass (adds go on) and no removal is planned
// in it this run. A `total` that overcounts (soft-deleted rows) with steady totals and no
// repeats is accepted: the read ended on a short or empty page.
#include <algorithm>
#include <climits>

#include "sync/steps.hpp"

namespace cdpsync::sync {

namespace {

// What the replies of one pass said.
struct PassObservation {
    int64_t min_total = INT64_MAX;
    int64_t max_total = INT64_MIN;
    int64_t last_total = 0;
    int64_t wrong_page = 0;  // a reply's `current` named another page than the one asked for

    void see(int64_t page_number, const cdp::Page<cdp::Member>& page) {
        if (page.current != 0 && page.current != page_number && wrong_page == 0) wrong_page = page_number;
        // An empty page answered `data: null` says total 0 without meaning it.
        if (page.records.empty() && page.total == 0) return;
        min_total = std::min(min_total, page.total);
        max_total = std::max(max_total, page.total);
        last_total = page.total;
    }
};

const char* const kUnreliableRead =
    "the member list kept shifting while it was read: removals from this group held this run";

enum class PassVerdict { consistent, overcounted, shifted };

struct Judgement {
    PassVerdict verdict = PassVerdict::consistent;
    std::string why;  // for the log when not consistent
};

Judgement judge_pass(const PassObservation& o, const store::Store::PassCount& n) {
    if (o.wrong_page != 0)
        return {PassVerdict::shifted, "the reply for page " + std::to_string(o.wrong_page) + " named another page"};
    if (o.min_total != INT64_MAX && o.min_total != o.max_total)
        return {PassVerdict::shifted, "total moved between " + std::to_string(o.min_total) + " and " +
                                          std::to_string(o.max_total) + " during the read"};
    if (n.rows != n.distinct)
        return {PassVerdict::shifted, std::to_string(n.rows - n.distinct) + " member(s) listed twice"};
    if (n.distinct > o.last_total)
        return {PassVerdict::shifted, std::to_string(n.distinct) + " distinct members read, total says " +
                                          std::to_string(o.last_total)};
    if (n.distinct < o.last_total)
        return {PassVerdict::overcounted, "total says " + std::to_string(o.last_total) + ", " +
                                              std::to_string(n.distinct) + " listed"};
    return {};
}

net::awaitable<bool> read_group_pass(Steps& st, int64_t snapshot_id, const store::ManagedGroup& g, int64_t first_page,
                                            PassObservation& seen, SnapshotResult& out) {
    std::vector<int64_t> customer_ids;
    // A named handler: GCC 12 miscompiles temporaries that live across a co_await.
    const int64_t group_id = g.group_id;
    cdp::Api::MemberPageHandler on_page = [&st, &seen, &customer_ids, &out, snapshot_id, group_id](int64_t page_number, cdp::Page<cdp::Member>&& page) {
        seen.see(page_number, page);
        customer_ids.clear();
        customer_ids.reserve(page.records.size());
        for (const auto& m : page.records) customer_ids.push_back(m.customer_id);
        if (st.store.snapshot_page(snapshot_id, group_id, page_number, customer_ids)) ++out.pages;
        st.throw_if_stopped();  // the pager waits for its reads in flight, then rethrows
    };
    auto done = co_await st.api.for_each_member_page(group_id, std::move(on_page), first_page);
    if (!done.has_value()) {
        out.errors.push_back({g.name, "reading the members failed: " + done.error().describe()});
        out.failed.insert(g.group_id);
        co_return false;
    }
    co_return true;
}


net::awaitable<void> read_group_verified(Steps& st, int64_t snapshot_id, const store::ManagedGroup& g,
                                                int64_t first_page, SnapshotResult& out) {
    std::string last_why;
    for (int pass = 1; pass <= kMaxReadPasses; ++pass) {
        if (pass > 1) {
            st.store.snapshot_restart_group(snapshot_id, g.group_id, st.cfg.cdp.page_size);
            first_page = 1;
        }
        PassObservation seen;
        const bool read = co_await read_group_pass(st, snapshot_id, g, first_page, seen, out);
        if (!read) co_return;
        const Judgement j = judge_pass(seen, st.store.snapshot_pass_count(snapshot_id, g.group_id));
        if (j.verdict != PassVerdict::shifted) {
            if (j.verdict == PassVerdict::overcounted)
                st.log.debug("snapshot of group '{}' (id {}): {} (soft-deleted rows?); read ended on a short page",
                          g.name, g.group_id, j.why);
            const int64_t members = st.store.snapshot_finish_group(snapshot_id, g.group_id);
            st.log.debug("snapshot of group '{}' (id {}): {} members{}", g.name, g.group_id, members,
                      pass > 1 ? " (pass " + std::to_string(pass) + ")" : "");
            co_return;
        }
        last_why = j.why;
        st.log.info("snapshot of group '{}' (id {}): the listing shifted during pass {} ({}){}", g.name, g.group_id,
                 pass, j.why, pass < kMaxReadPasses ? ", reading it again" : "");
    }
    const int64_t members = st.store.snapshot_finish_group(snapshot_id, g.group_id, /*unreliable=*/true);
    out.unreliable.insert(g.group_id);
    out.errors.push_back({g.name, kUnreliableRead});
    st.log.warn("snapshot of group '{}' (id {}): no consistent read in {} passes (last: {}); keeping the {} members "
             "of the last pass, adding what is missing, and removing nothing from this group this run",
             g.name, g.group_id, kMaxReadPasses, last_why, members);
}

}  // namespace

net::awaitable<SnapshotResult> Steps::snapshot(int64_t snapshot_id, std::vector<store::ManagedGroup> groups) {
    SnapshotResult out;
    std::vector<int64_t> ids;
    for (const auto& g : groups) ids.push_back(g.group_id);
    const int page_size = cfg.cdp.page_size;
    store.snapshot_begin(snapshot_id, ids, page_size);
    auto cursors = store.snapshot_cursors(snapshot_id);
    for (const auto& g : groups) {
        throw_if_stopped();
        auto& c = cursors[g.group_id];
        if (c.done) {
            if (c.unreliable) {
                out.unreliable.insert(g.group_id);
                out.errors.push_back({g.name, kUnreliableRead});
            }
            continue;
        }
        if (c.next_page > 1 && c.page_size != page_size) {
            // Page numbers of another page size do not line up: read this group again.
            log.info("snapshot of group '{}' (id {}): page size changed from {} to {}, restarting it", g.name,
                     g.group_id, c.page_size, page_size);
            store.snapshot_restart_group(snapshot_id, g.group_id, page_size);
            c.next_page = 1;
        }
        if (c.next_page > 1)
            log.info("snapshot of group '{}' (id {}) continues at page {}", g.name, g.group_id, c.next_page);
        co_await read_group_verified(*this, snapshot_id, g, c.next_page, out);
    }
    co_return out;
}

}  // namespace cdpsync::sync
