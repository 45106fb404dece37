// Snapshot phase: each group's members paged into the mirror, each page in a transaction
// together with its cursor, so a killed snapshot continues at the next uncommitted page.
// The pages go to the DB lane (db_lane.hpp) through a group commit (group_commit.hpp) as
// they arrive and are committed there, several waiting pages in one transaction, while the
// next pages are read: the io_context thread never waits for PostgreSQL. When
// kMaxUncommittedPages wait uncommitted the page sink suspends, and with it that group's
// pager. kGroupsReadAtOnce groups are read at once (their calls share the client's
// max_in_flight and its rate limiter), so one group's checks and finish on the lane overlap
// the reads of the others. A group's checks and finish are awaited in order behind its pages.
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
#include <atomic>
#include <climits>
#include <memory>

#include "sync/group_commit.hpp"
#include "sync/steps.hpp"
#include "sync/workers.hpp"

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

constexpr int kMaxUncommittedPages = 64;
constexpr int kGroupsReadAtOnce = 4;

using PageRows = store::Mirror::PageRows;

// What the readers of one snapshot share: the page commits, and whether one of them failed
// (the others then stop at their next page).
struct Reader {
    Reader(Steps& steps, const net::any_io_executor& io, int64_t id)
        : st(steps),
          snapshot_id(id),
          taken(std::make_shared<std::atomic<int64_t>>(0)),
          pages(steps.db, io, kMaxUncommittedPages,
                [t = taken](store::Session& s, std::vector<PageRows>& batch) { *t += s.mirror.snapshot_pages(batch); }) {}

    Steps& st;
    const int64_t snapshot_id;
    std::shared_ptr<std::atomic<int64_t>> taken;  // pages committed (those at their cursor)
    GroupCommit<PageRows> pages;
    bool abandoned = false;
};

// Another reader failed: this one stops (the first failure is what the snapshot throws).
struct Abandoned : std::runtime_error {
    Abandoned() : std::runtime_error("another group's read failed") {}
};

const char* const kUnreliableRead =
    "the member list kept shifting while it was read: removals from this group held this run";

enum class PassVerdict { consistent, overcounted, shifted };

struct Judgement {
    PassVerdict verdict = PassVerdict::consistent;
    std::string why;  // for the log when not consistent
};

Judgement judge_pass(const PassObservation& o, const store::Mirror::PassCount& n) {
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

net::awaitable<void> take_page(Reader& r, PassObservation& seen, int64_t group_id, int64_t page_number,
                               cdp::Page<cdp::Member> page) {
    seen.see(page_number, page);
    PageRows rows{r.snapshot_id, group_id, page_number, {}};
    rows.customer_ids.reserve(page.records.size());
    for (const auto& m : page.records) rows.customer_ids.push_back(m.customer_id);
    co_await r.pages.hand_over(std::move(rows));
    // The pager waits for its reads in flight, then rethrows.
    r.st.throw_if_stopped();
    if (r.abandoned) throw Abandoned();
}

net::awaitable<bool> read_group_pass(Reader& r, const store::ManagedGroup& g, int64_t first_page,
                                     PassObservation& seen, SnapshotResult& out) {
    const int64_t group_id = g.group_id;
    cdp::Api::MemberPageSink on_page = [&r, &seen, group_id](int64_t page_number, cdp::Page<cdp::Member> page) {
        return take_page(r, seen, group_id, page_number, std::move(page));
    };
    auto done = co_await r.st.api.for_each_member_page_awaited(group_id, std::move(on_page), first_page);
    if (!done.has_value()) {
        out.errors.push_back({g.name, "reading the members failed: " + done.error().describe()});
        out.failed.insert(g.group_id);
        co_return false;
    }
    co_return true;
}

// Store calls of the snapshot, on the lane behind the pages handed over before them.
net::awaitable<store::Mirror::PassCount> pass_count(Steps& st, int64_t snapshot_id, int64_t group_id) {
    co_return co_await st.db.run(
        [snapshot_id, group_id](store::Session& s) { return s.mirror.snapshot_pass_count(snapshot_id, group_id); });
}

net::awaitable<int64_t> finish_group(Steps& st, int64_t snapshot_id, int64_t group_id, bool unreliable) {
    co_return co_await st.db.run([snapshot_id, group_id, unreliable](store::Session& s) {
        return s.mirror.snapshot_finish_group(snapshot_id, group_id, unreliable);
    });
}

net::awaitable<void> restart_group(Steps& st, int64_t snapshot_id, int64_t group_id, int page_size) {
    co_await st.db.run([snapshot_id, group_id, page_size](store::Session& s) {
        s.mirror.snapshot_restart_group(snapshot_id, group_id, page_size);
    });
}

net::awaitable<void> read_group_verified(Reader& r, const store::ManagedGroup& g, int64_t first_page,
                                         SnapshotResult& out) {
    Steps& st = r.st;
    const int64_t snapshot_id = r.snapshot_id;
    std::string last_why;
    for (int pass = 1; pass <= kMaxReadPasses; ++pass) {
        if (pass > 1) {
            co_await restart_group(st, snapshot_id, g.group_id, st.cfg.cdp.page_size);
            first_page = 1;
        }
        PassObservation seen;
        const bool read = co_await read_group_pass(r, g, first_page, seen, out);
        if (!read) co_return;
        const store::Mirror::PassCount counted = co_await pass_count(st, snapshot_id, g.group_id);
        const Judgement j = judge_pass(seen, counted);
        if (j.verdict != PassVerdict::shifted) {
            if (j.verdict == PassVerdict::overcounted)
                st.log.debug("snapshot of group '{}' (id {}): {} (soft-deleted rows?); read ended on a short page",
                          g.name, g.group_id, j.why);
            const int64_t members = co_await finish_group(st, snapshot_id, g.group_id, false);
            st.log.debug("snapshot of group '{}' (id {}): {} members{}", g.name, g.group_id, members,
                      pass > 1 ? " (pass " + std::to_string(pass) + ")" : "");
            co_return;
        }
        last_why = j.why;
        st.log.info("snapshot of group '{}' (id {}): the listing shifted during pass {} ({}){}", g.name, g.group_id,
                 pass, j.why, pass < kMaxReadPasses ? ", reading it again" : "");
    }
    const int64_t members = co_await finish_group(st, snapshot_id, g.group_id, /*unreliable=*/true);
    out.unreliable.insert(g.group_id);
    out.errors.push_back({g.name, kUnreliableRead});
    st.log.warn("snapshot of group '{}' (id {}): no consistent read in {} passes (last: {}); keeping the {} members "
             "of the last pass, adding what is missing, and removing nothing from this group this run",
             g.name, g.group_id, kMaxReadPasses, last_why, members);
}

// One group: skipped when its cursor is done, restarted when the page size changed,
// otherwise read from its cursor on.
net::awaitable<void> read_group(Reader& r, const store::ManagedGroup& g, store::SnapshotCursor c,
                                SnapshotResult& out) {
    Steps& st = r.st;
    if (c.done) {
        if (c.unreliable) {
            out.unreliable.insert(g.group_id);
            out.errors.push_back({g.name, kUnreliableRead});
        }
        co_return;
    }
    const int page_size = st.cfg.cdp.page_size;
    if (c.next_page > 1 && c.page_size != page_size) {
        // Page numbers of another page size do not line up: read this group again.
        st.log.info("snapshot of group '{}' (id {}): page size changed from {} to {}, restarting it", g.name,
                    g.group_id, c.page_size, page_size);
        co_await restart_group(st, r.snapshot_id, g.group_id, page_size);
        c.next_page = 1;
    }
    if (c.next_page > 1)
        st.log.info("snapshot of group '{}' (id {}) continues at page {}", g.name, g.group_id, c.next_page);
    co_await read_group_verified(r, g, c.next_page, out);
}

void merge_into(SnapshotResult& out, SnapshotResult&& group) {
    for (auto& e : group.errors) out.errors.push_back(std::move(e));
    out.failed.merge(group.failed);
    out.unreliable.merge(group.unreliable);
}

// Every group, kGroupsReadAtOnce at a time; the results in the groups' order.
net::awaitable<void> read_groups(Reader& r, const std::vector<store::ManagedGroup>& groups,
                                 std::map<int64_t, store::SnapshotCursor>& cursors, SnapshotResult& out) {
    std::vector<SnapshotResult> per_group(groups.size());
    size_t next = 0;
    // Named std::functions: the workers' frames point into them until all have ended.
    const std::function<net::awaitable<void>()> worker = [&]() -> net::awaitable<void> {
        while (next < groups.size() && !r.abandoned) {
            r.st.throw_if_stopped();
            const size_t i = next++;
            co_await read_group(r, groups[i], cursors[groups[i].group_id], per_group[i]);
        }
    };
    const int width = static_cast<int>(std::min<size_t>(kGroupsReadAtOnce, std::max<size_t>(1, groups.size())));
    const std::function<void()> abandon = [&r] { r.abandoned = true; };
    std::exception_ptr failed;
    try {
        co_await run_workers(width, worker, abandon);
    } catch (...) {
        failed = std::current_exception();
    }
    co_await r.pages.flush();  // even after a throw: the lane holds no job that points here
    if (failed) std::rethrow_exception(failed);
    for (auto& g : per_group) merge_into(out, std::move(g));
}

}  // namespace

net::awaitable<SnapshotResult> Steps::snapshot(int64_t snapshot_id, std::vector<store::ManagedGroup> groups) {
    SnapshotResult out;
    std::vector<int64_t> ids;
    for (const auto& g : groups) ids.push_back(g.group_id);
    const int page_size = cfg.cdp.page_size;
    // Named: GCC 12 miscompiles temporaries that live across a co_await.
    auto begin = [snapshot_id, ids, page_size](store::Session& s) {
        s.mirror.snapshot_begin(snapshot_id, ids, page_size);
        return s.mirror.snapshot_cursors(snapshot_id);
    };
    auto cursors = co_await db.run(std::move(begin));
    Reader reader(*this, co_await net::this_coro::executor, snapshot_id);
    co_await read_groups(reader, groups, cursors, out);
    out.pages = reader.taken->load();
    co_return out;
}

}  // namespace cdpsync::sync
