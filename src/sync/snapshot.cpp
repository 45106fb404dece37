// Snapshot phase: each group's members paged into the mirror, each page in a transaction
// together with its cursor, so a killed snapshot continues at the next uncommitted page.
// The pages go to the DB lane (db_lane.hpp) as they arrive and are committed there, several
// waiting pages in one transaction, while the next pages are read: the io_context thread
// never waits for PostgreSQL unless kMaxUncommittedPages wait uncommitted (then the
// handler blocks until the lane commits: backpressure, as the pager's sink cannot suspend).
// The pass's checks and a group's finish are awaited in order behind its pages.
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
#include <condition_variable>
#include <memory>
#include <mutex>

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

constexpr int kMaxUncommittedPages = 64;

// Pages handed over to the lane and committed in groups. A failed commit fails the lane:
// the next awaited store call rethrows it.
class PageWriter {
public:
    explicit PageWriter(DbLane& db) : db_(db), shared_(std::make_shared<Shared>()) {}

    void hand_over(store::Mirror::PageRows page) {
        bool queue_commit = false;
        {
            std::unique_lock lock(shared_->mutex);
            shared_->room.wait(lock, [&] { return shared_->uncommitted < kMaxUncommittedPages || shared_->failed; });
            if (shared_->failed) return;
            shared_->handed.push_back(std::move(page));
            ++shared_->uncommitted;
            queue_commit = !std::exchange(shared_->commit_queued, true);
        }
        if (queue_commit) post_commit();
    }

    // Pages committed (those at their cursor), once the lane has run what was handed over.
    int64_t taken() const { return shared_->taken.load(); }

private:
    struct Shared {
        std::mutex mutex;
        std::condition_variable room;
        std::vector<store::Mirror::PageRows> handed;
        bool commit_queued = false;
        int uncommitted = 0;
        bool failed = false;
        std::atomic<int64_t> taken{0};
    };

    void post_commit() {
        auto count = std::make_shared<int>(0);
        auto commit = [sh = shared_, count](store::Session& store) {
            std::vector<store::Mirror::PageRows> batch;
            {
                std::lock_guard lock(sh->mutex);
                batch.swap(sh->handed);
                sh->commit_queued = false;
            }
            *count = static_cast<int>(batch.size());
            sh->taken += store.mirror.snapshot_pages(batch);
        };
        auto committed = [sh = shared_, count](std::exception_ptr e) {
            {
                std::lock_guard lock(sh->mutex);
                sh->uncommitted -= *count;
                if (e) sh->failed = true;
            }
            sh->room.notify_all();
        };
        db_.post(std::move(commit), std::move(committed));
    }

    DbLane& db_;
    std::shared_ptr<Shared> shared_;
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

net::awaitable<bool> read_group_pass(Steps& st, PageWriter& writer, int64_t snapshot_id, const store::ManagedGroup& g,
                                     int64_t first_page, PassObservation& seen, SnapshotResult& out) {
    // A named handler: GCC 12 miscompiles temporaries that live across a co_await.
    const int64_t group_id = g.group_id;
    cdp::Api::MemberPageHandler on_page = [&st, &seen, &writer, snapshot_id, group_id](int64_t page_number,
                                                                                       cdp::Page<cdp::Member>&& page) {
        seen.see(page_number, page);
        store::Mirror::PageRows rows{snapshot_id, group_id, page_number, {}};
        rows.customer_ids.reserve(page.records.size());
        for (const auto& m : page.records) rows.customer_ids.push_back(m.customer_id);
        writer.hand_over(std::move(rows));
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

net::awaitable<void> read_group_verified(Steps& st, PageWriter& writer, int64_t snapshot_id,
                                         const store::ManagedGroup& g, int64_t first_page, SnapshotResult& out) {
    std::string last_why;
    for (int pass = 1; pass <= kMaxReadPasses; ++pass) {
        if (pass > 1) {
            co_await restart_group(st, snapshot_id, g.group_id, st.cfg.cdp.page_size);
            first_page = 1;
        }
        PassObservation seen;
        const bool read = co_await read_group_pass(st, writer, snapshot_id, g, first_page, seen, out);
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
    PageWriter writer(db);
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
            co_await restart_group(*this, snapshot_id, g.group_id, page_size);
            c.next_page = 1;
        }
        if (c.next_page > 1)
            log.info("snapshot of group '{}' (id {}) continues at page {}", g.name, g.group_id, c.next_page);
        co_await read_group_verified(*this, writer, snapshot_id, g, c.next_page, out);
    }
    co_await db.flush();
    out.pages = writer.taken();
    co_return out;
}

}  // namespace cdpsync::sync
