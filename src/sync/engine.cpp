// The run orchestration: phases, resume, the guard and the honest final status.
#include "sync/engine.hpp"

#include <unistd.h>

#include <chrono>
#include <exception>
#include <set>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "cdp/api.hpp"
#include "config/token.hpp"
#include "sync/identity.hpp"
#include "sync/steps.hpp"
#include "config/text.hpp"

namespace cdpsync::sync {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}
double since(Clock::time_point t0) { return seconds_between(t0, Clock::now()); }

json issues_json(const std::vector<GroupIssue>& issues) {
    json out = json::array();
    for (const auto& i : issues) out.push_back({{"group", i.name}, {"error", i.error}});
    return out;
}

json failures_json(const std::vector<store::FailedOp>& failures) {
    json out = json::array();
    for (const auto& f : failures) {
        json j{{"op", f.op.id},
               {"customer_id", f.op.customer_id},
               {"kind", store::to_string(f.op.kind)},
               {"group_ids", f.op.group_ids},
               {"state", f.state},
               {"attempts", f.op.attempts},
               {"http_status", f.http_status},
               {"msg", f.msg}};
        j["cdp_code"] = f.cdp_code ? json(*f.cdp_code) : json(nullptr);
        out.push_back(std::move(j));
    }
    return out;
}

}  // namespace

int64_t plan_snapshot_id() { return -static_cast<int64_t>(::getpid()); }

const char* to_string(RunStatus status) {
    switch (status) {
    case RunStatus::succeeded: return "succeeded";
    case RunStatus::failed: return "failed";
    case RunStatus::blocked: return "blocked";
    case RunStatus::busy: return "busy";
    case RunStatus::interrupted: return "interrupted";
    }
    return "?";
}

struct Engine::Impl {
    config::Config cfg;
    std::shared_ptr<spdlog::logger> log;
    store::Session store;
    DbLane db{store};  // the store's one user while a step runs (destroyed first)
    // A second session, for a full run's reads while `store` loads the source (created at
    // the first full run; its lane destroyed first).
    std::unique_ptr<store::Session> read_store;
    std::unique_ptr<DbLane> read_db;
    net::io_context io;
    cdp::Api api;

    Impl(const config::Config& c, std::shared_ptr<spdlog::logger> l)
        : cfg(c),
          log(l ? std::move(l) : spdlog::default_logger()),
          store(c.database.dsn, c.database.schema, log),
          api(io.get_executor(), cdp::ApiOptions::from_config(c.cdp), config::TokenSource(c.cdp), log) {
        store.migrate();
    }

    // Runs a coroutine on the io_context to completion, rethrowing what it throws.
    template <class T>
    T block_on(net::awaitable<T> work) {
        std::optional<T> out;
        std::exception_ptr error;
        net::co_spawn(io, std::move(work), [&](std::exception_ptr e, T value) {
            error = e;
            if (!e) out = std::move(value);
        });
        io.restart();
        io.run();
        db.wait_idle();  // a step that threw may have left jobs handed over: this thread uses the store next
        if (error) std::rethrow_exception(error);
        return std::move(*out);
    }

    Steps steps() { return Steps{cfg, *log, store, db, api}; }

    void add_api_delta(store::RunCounts& c, const cdp::ApiStats& before) {
        auto now = api.stats();
        c.calls += static_cast<int64_t>(now.calls - before.calls);
        c.retries += static_cast<int64_t>(now.retries - before.retries);
        c.failures += static_cast<int64_t>(now.failures - before.failures);
    }

    json details(const RunReport& r, const std::vector<std::string>& only_groups) {
        json d{{"source", r.source.to_json()},
               {"group_errors", issues_json(r.group_errors)},
               {"failures", failures_json(r.failures)},
               {"only_groups", only_groups},
               {"plan_seconds", r.plan_seconds},
               {"phase_seconds", r.phase_seconds},
               {"groups_deleted", r.groups_deleted},
               {"seconds", r.seconds}};
        if (!r.guard_sample.empty()) {
            json s = json::array();
            for (const auto& [c, g] : r.guard_sample) s.push_back({{"customer_id", c}, {"group", g}});
            d["guard_sample"] = s;
        }
        return d;
    }

    struct Prune {
        std::vector<store::GroupMapping> groups;
        int64_t removes = 0;         // memberships they hold, by the mirror
        bool source_empty = false;   // the source names no group at all
    };

    // One run being carried forward: its report, the first fatal error, and the clocks.
    struct RunState {
        RunState(int64_t run_id, RunKind run_kind, bool run_force, const std::vector<std::string>& groups, Steps steps)
            : id(run_id), kind(run_kind), force(run_force), only_groups(groups), st(steps) {}

        int64_t id;
        RunKind kind;
        bool force;
        const std::vector<std::string>& only_groups;
        Steps st;
        Clock::time_point t0 = Clock::now();
        Clock::time_point phase_start = Clock::now();
        cdp::ApiStats api_before;
        RunReport r;
        std::optional<Abort> fatal;  // a step ended the run early
        std::vector<store::GroupMapping> prune_groups;

        // Adds the wall time since the last lap to the phase's total, and restarts the clock.
        void lap(const char* phase_name) {
            const auto now = Clock::now();
            r.phase_seconds[phase_name] += std::chrono::duration<double>(now - phase_start).count();
            phase_start = now;
        }
    };

    // Carries one run from `phase` to its end. The run row exists and is 'running'.
    RunReport execute(int64_t run_id, RunKind kind, bool force, const std::vector<std::string>& only_groups,
                      store::RunPhase phase, store::RunCounts counts, const std::atomic<bool>* stop) {
        RunState run(run_id, kind, force, only_groups, steps());
        run.st.stop = stop;
        run.api_before = api.stats();
        run.r.run_id = run_id;
        run.r.kind = kind;
        run.r.counts = counts;
        try {
            if (phase != store::RunPhase::apply) {
                if (!prepare(run)) return std::move(run.r);  // the delete guard stopped it
            } else {
                run.r.resumed_phase = phase;
            }
            apply_and_prune(run);
        } catch (const Interrupted&) {
            return interrupted(run);
        } catch (const std::exception& e) {
            // PostgreSQL or something unexpected: the run stays 'running' so that the next
            // process resumes it, exactly as after a kill.
            log->error("run {}: stopped: {}", run_id, e.what());
            throw;
        }
        return finish(run, phase);
    }

    // source -> groups -> snapshot -> plan -> guard -> journal (a full run reads what it can
    // while the source loads). False when the delete guard stopped the run (recorded as
    // blocked); a fatal error is left in run.fatal.
    bool prepare(RunState& run) {
        std::optional<EarlyReads> early;
        if (run.kind == RunKind::full) early = load_source_while_reading(run);
        else load_source_phase(run);
        if (run.fatal) return true;
        run.st.throw_if_stopped();
        store.runs.set_phase(run.id, store::RunPhase::groups);
        std::optional<GroupListing> listing;
        if (early) listing = std::move(early->listing);
        GroupsResult g = block_on(run.st.resolve_groups(run.kind == RunKind::full, false, std::move(listing)));
        run.r.group_errors = g.errors;
        run.r.counts.groups_created += g.created;
        if (g.fatal) run.fatal = g.fatal;
        run.lap("groups");
        if (run.fatal) return true;
        read_phase(run, g, early);
        plan_phase(run, g);
        Prune prune = prune_plan(run.st, run.kind, run.only_groups);
        if (const std::string why = guard(run.r.plan.removes, prune, run.force); !why.empty()) {
            block(run, why, prune);
            return false;
        }
        // journal: the plan is durable before the first write call
        run.st.throw_if_stopped();
        store.planner.journal_plan(run.id, run.r.counts, store::CarryOver{run.kind == RunKind::full});
        run.lap("journal");
        run.prune_groups = std::move(prune.groups);
        return true;
    }

    void load_source_phase(RunState& run) {
        run.st.throw_if_stopped();
        store.runs.set_phase(run.id, store::RunPhase::source);
        try {
            take_source(run, store.source.load_source(cfg.database, run.only_groups));
        } catch (const store::SourceError& e) {
            run.fatal = Abort{Abort::Cause::source_failed, text::one_line(e.what())};
        }
        run.lap("source");
    }

    void take_source(RunState& run, store::SourceStats stats) {
        auto& r = run.r;
        r.source = std::move(stats);
        r.counts.rows_read = r.source.rows_read;
        r.counts.rows_rejected = r.source.rows_rejected;
        r.counts.duplicates = r.source.duplicates;
        if (r.source.rows_rejected > 0) log_rejects(r.source);
    }

    // ---- a full run: the source load beside the reads that do not need it

    struct SourceLoad {
        std::optional<store::SourceStats> stats;  // set when loaded
        std::optional<Abort> fatal;               // the source query failed
        std::exception_ptr error;                 // PostgreSQL or something unexpected
        Clock::time_point end;
    };

    // What a full run read before its source was loaded: the CDP's group list and the
    // members of the groups it resolves to their mapped id whenever the source names them.
    struct EarlyReads {
        GroupListing listing;
        std::vector<store::ManagedGroup> groups;  // read (or tried) into the run's snapshot
        SnapshotResult snapshot;
        double listing_seconds = 0;
        double snapshot_seconds = 0;
        Clock::time_point end;
    };

    Steps read_steps(const RunState& run) {
        if (!read_store) {
            read_store = std::make_unique<store::Session>(cfg.database.dsn, cfg.database.schema, log);
            read_db = std::make_unique<DbLane>(*read_store);
        }
        Steps reader{cfg, *log, *read_store, *read_db, api};
        reader.stop = run.st.stop;
        return reader;
    }

    // The source loads on the engine's session (its DB lane's thread) while the group list
    // and the known groups' members are read on the read session: the rate-limited reads do
    // not wait for the source. A failed source cuts the reads short (no read starts after it;
    // those in flight are answered first), and the run ends before any write.
    std::optional<EarlyReads> load_source_while_reading(RunState& run) {
        run.st.throw_if_stopped();
        store.runs.set_phase(run.id, store::RunPhase::source);
        Steps reader = read_steps(run);
        std::atomic<bool> source_failed{false};
        reader.cancel = &source_failed;
        bool reads_done = false;
        const auto start = Clock::now();
        SourceLoad source;
        std::optional<EarlyReads> early;
        std::exception_ptr read_error;
        net::co_spawn(io, load_source_beside(run.id, run.only_groups, source_failed, reads_done),
                      [&](std::exception_ptr e, SourceLoad s) {
                          source = std::move(s);
                          if (e) source.error = e;
                      });
        net::co_spawn(io, read_known_groups(reader, run.id, run.only_groups, reads_done),
                      [&](std::exception_ptr e, EarlyReads r) {
                          if (e) read_error = e;
                          else early = std::move(r);
                      });
        io.restart();
        io.run();
        db.wait_idle();
        read_db->wait_idle();
        if (source.error) std::rethrow_exception(source.error);
        run.r.phase_seconds["source"] += seconds_between(start, source.end);
        run.phase_start = Clock::now();
        if (source.fatal) {
            run.fatal = source.fatal;
            if (early) run.r.counts.member_pages += early->snapshot.pages;
            return std::nullopt;
        }
        take_source(run, std::move(*source.stats));
        if (read_error) std::rethrow_exception(read_error);
        run.r.phase_seconds["groups"] += early->listing_seconds;
        run.r.phase_seconds["snapshot"] += early->snapshot_seconds;
        run.r.phase_seconds["overlap"] += seconds_between(start, std::min(source.end, early->end));
        return early;
    }

    net::awaitable<SourceLoad> load_source_beside(int64_t run_id, std::vector<std::string> only_groups,
                                                  std::atomic<bool>& source_failed, const bool& reads_done) {
        SourceLoad out;
        try {
            auto load = [this, only_groups](store::Session& s) { return s.source.load_source(cfg.database, only_groups); };
            out.stats = co_await db.run(std::move(load));
            // The reads go on: a kill from here on finds the run in its snapshot.
            auto reading = [run_id](store::Session& s) { s.runs.set_phase(run_id, store::RunPhase::snapshot); };
            if (!reads_done) co_await db.run(std::move(reading));
        } catch (const store::SourceError& e) {
            out.fatal = Abort{Abort::Cause::source_failed, text::one_line(e.what())};
        } catch (...) {
            out.error = std::current_exception();
        }
        out.end = Clock::now();
        if (out.fatal || out.error) source_failed = true;
        co_return out;
    }

    net::awaitable<EarlyReads> read_known_groups(Steps reader, int64_t run_id, std::vector<std::string> only_groups,
                                                 bool& reads_done) {
        EarlyReads out;
        auto t = Clock::now();
        out.listing = co_await reader.list_groups();
        out.listing_seconds = since(t);
        if (out.listing.problem.empty() && !reader.stop_requested()) {
            auto read_map = [](store::Session& s) { return s.groups.group_map(); };
            const auto group_map = co_await reader.db.run(std::move(read_map));
            out.groups = known_groups(group_map, out.listing, only_groups);
            t = Clock::now();
            try {
                out.snapshot = co_await reader.snapshot(run_id, out.groups);
            } catch (const Interrupted&) {
                if (reader.stop && reader.stop->load()) throw;
                // Cancelled: the source failed, and the run ends with its error.
            }
            out.snapshot_seconds = since(t);
        }
        out.end = Clock::now();
        reads_done = true;
        co_return out;
    }

    // The early reads of the groups this run manages into the run; a group it does not (the
    // source no longer names it) was read for nothing: its pages count, its outcome does not.
    void take_early_reads(RunState& run, const EarlyReads& early, std::vector<store::ManagedGroup>& managed,
                          const std::vector<store::ManagedGroup>& existing, std::set<int64_t>& unreliable) {
        std::set<int64_t> ids;
        for (const auto& m : existing) ids.insert(m.group_id);
        std::set<std::string> names;
        std::string unused;
        for (const auto& m : early.groups) {
            if (ids.count(m.group_id)) names.insert(m.name);
            else unused += (unused.empty() ? "'" : ", '") + m.name + "'";
        }
        SnapshotResult kept;
        kept.pages = early.snapshot.pages;
        for (const auto& e : early.snapshot.errors)
            if (names.count(e.name)) kept.errors.push_back(e);
        for (int64_t id : early.snapshot.failed)
            if (ids.count(id)) kept.failed.insert(id);
        for (int64_t id : early.snapshot.unreliable)
            if (ids.count(id)) kept.unreliable.insert(id);
        if (!unused.empty())
            log->info("run {}: read before the source was loaded, no longer managed (the source no longer names "
                      "them): {}; those reads were spent for nothing",
                      run.id, unused);
        take_snapshot(kept, managed, run.r, unreliable);
    }

    // The snapshot (full: every existing group; incremental: those never read), drift
    // detection, and removals held for groups whose read could not be trusted.
    void read_phase(RunState& run, GroupsResult& g, const std::optional<EarlyReads>& early) {
        std::vector<store::ManagedGroup> to_read = run.kind == RunKind::full ? g.existing : g.unsnapshotted;
        std::set<int64_t> unreliable;
        if (early) {
            std::set<int64_t> read_early;
            for (const auto& m : early->groups) read_early.insert(m.group_id);
            std::erase_if(to_read, [&](const store::ManagedGroup& m) { return read_early.count(m.group_id) > 0; });
            take_early_reads(run, *early, g.managed, g.existing, unreliable);
        }
        if (!to_read.empty()) {
            store.runs.set_phase(run.id, store::RunPhase::snapshot);
            SnapshotResult s = block_on(run.st.snapshot(run.id, to_read));
            take_snapshot(s, g.managed, run.r, unreliable);
            run.lap("snapshot");
        }
        if (run.kind == RunKind::incremental && cfg.sync.drift_check) correct_drift(run, g, to_read, unreliable);
        hold_unreliable(g.managed, unreliable);
    }

    void plan_phase(RunState& run, GroupsResult& g) {
        auto& r = run.r;
        run.st.throw_if_stopped();
        store.runs.set_phase(run.id, store::RunPhase::plan);
        const auto tp = Clock::now();
        store.planner.set_managed(g.managed);
        r.plan = store.planner.compute_plan(plan_options());
        if (r.plan.removes > 0) hold_removals_until_identity_confirmed(g.managed, r);
        r.plan_seconds = since(tp);
        run.lap("plan");
        r.counts.adds = r.plan.adds;
        r.counts.removes = r.plan.removes;
        r.counts.ops_planned = r.plan.write_calls();
        log->info("run {}: plan +{} -{} memberships for {} customers: {} write calls ({:.2f} s)", run.id, r.plan.adds,
                  r.plan.removes, r.plan.customers, r.plan.write_calls(), r.plan_seconds);
    }

    // The delete guard stopped the run before any write: say what it held back, record it.
    void block(RunState& run, const std::string& why, const Prune& prune) {
        auto& r = run.r;
        r.guard_sample = store.planner.sample_removals(20);
        log->error("run {}: {}", run.id, why);
        for (const auto& gp : r.plan.groups)
            if (gp.removes > 0)
                log->error("run {}: would remove {} of {} members from group '{}'", run.id, gp.removes, gp.mirror,
                           gp.name);
        for (const auto& [c, name] : r.guard_sample)
            log->error("run {}: would remove customer {} from '{}'", run.id, c, name);
        for (const auto& g : prune.groups)
            log->error("run {}: would delete group '{}' (sync.prune_groups)", run.id, g.name);
        r.status = RunStatus::blocked;
        r.error = why;
        add_api_delta(r.counts, run.api_before);
        r.seconds = since(run.t0);
        store.runs.finish_run(run.id, store::RunStatus::blocked, why, r.counts, details(r, run.only_groups));
        store.mirror.snapshot_discard(run.id);
        log->info("{}", r.summary_line());
    }

    void apply_and_prune(RunState& run) {
        if (run.fatal) return;
        run.st.throw_if_stopped();
        run.phase_start = Clock::now();
        ApplyResult a = block_on(run.st.apply(run.id));
        run.lap("apply");
        if (a.aborted) run.fatal = a.aborted;
        if (run.fatal || run.prune_groups.empty()) return;
        // After the apply, so a deleted group never takes memberships still planned. A kill
        // before this point leaves it to the next full run.
        run.st.throw_if_stopped();
        PruneResult p = block_on(run.st.prune(std::move(run.prune_groups)));
        run.lap("prune");
        run.r.groups_deleted = p.deleted;
        for (auto& e : p.errors) run.r.group_errors.push_back(std::move(e));
    }

    // Like a kill, but recorded: the phase and its cursors or pending ops stay for the next
    // run to resume.
    RunReport interrupted(RunState& run) {
        auto& r = run.r;
        const auto totals = store.journal.op_totals(run.id);
        r.counts.ops_done = totals.done;
        r.counts.ops_failed = totals.failed;
        add_api_delta(r.counts, run.api_before);
        r.status = RunStatus::interrupted;
        r.error = "stopped on request; the next run resumes it";
        r.seconds = since(run.t0);
        store.runs.interrupt_run(run.id, r.error, r.counts, details(r, run.only_groups));
        log->warn("{}", r.summary_line());
        return std::move(r);
    }

    // The honest final status: succeeded only when every op is confirmed and no group failed.
    RunReport finish(RunState& run, store::RunPhase phase) {
        auto& r = run.r;
        const auto totals = store.journal.op_totals(run.id);
        r.counts.ops_done = totals.done;
        r.counts.ops_failed = totals.failed + totals.pending;
        r.counts.ops_permanent = totals.permanent;
        // A resumed apply keeps the group errors its run found before the kill.
        if (phase != store::RunPhase::apply) r.counts.group_errors = static_cast<int64_t>(r.group_errors.size());
        r.failures = store.journal.failed_ops(run.id, 20);
        add_api_delta(r.counts, run.api_before);
        const bool ok = !run.fatal && totals.pending == 0 && totals.failed == 0 && totals.permanent == 0 &&
                        r.counts.group_errors == 0;
        r.status = ok ? RunStatus::succeeded : RunStatus::failed;
        r.error = run.fatal ? run.fatal->message : ok ? "" : why_not_converged(r.counts, totals);
        r.seconds = since(run.t0);
        store.runs.finish_run(run.id, ok ? store::RunStatus::succeeded : store::RunStatus::failed, r.error, r.counts, details(r, run.only_groups));
        store.mirror.snapshot_discard(run.id);
        for (const auto& f : r.failures)
            log->warn("run {}: op {} ({} customer {} groups {}) {}: {}", run.id, f.op.id, store::to_string(f.op.kind),
                      f.op.customer_id, store::to_pg_array(f.op.group_ids), f.state, f.msg);
        for (const auto& e : r.group_errors) log->warn("run {}: group '{}': {}", run.id, e.name, e.error);
        (ok ? log->info("{}", r.summary_line()) : log->warn("{}", r.summary_line()));
        return std::move(r);
    }

    static std::string why_not_converged(const store::RunCounts& counts, const store::OpTotals& totals) {
        std::string why;
        if (counts.group_errors > 0) why += std::to_string(counts.group_errors) + " group error(s)";
        if (totals.failed + totals.pending > 0)
            why += (why.empty() ? "" : ", ") + std::to_string(totals.failed + totals.pending) + " op(s) not confirmed";
        if (totals.permanent > 0)
            why += (why.empty() ? "" : ", ") + std::to_string(totals.permanent) + " op(s) failing permanently";
        return why;
    }

    // Only a full run over every group prunes: a --group run does not see the other names.
    Prune prune_plan(Steps& st, RunKind kind, const std::vector<std::string>& only_groups) {
        Prune p;
        if (!cfg.sync.prune_groups || kind != RunKind::full || !only_groups.empty()) return p;
        const auto desired = store.source.desired_groups();
        p.groups = st.prune_candidates(desired);
        for (const auto& g : p.groups) p.removes += store.mirror.mirror_count(*g.group_id);
        p.source_empty = desired.empty();
        return p;
    }

    // Why the delete guard stops this run; "" when it passes.
    std::string guard(int64_t removes, const Prune& prune, bool force) const {
        if (force) return "";
        const int64_t total = removes + prune.removes;
        if (total > cfg.sync.max_deletes)
            return "the plan removes " + std::to_string(total) + " memberships" +
                   (prune.removes ? " (" + std::to_string(prune.removes) + " in groups sync.prune_groups deletes)" : "") +
                   ", more than sync.max_deletes (" + std::to_string(cfg.sync.max_deletes) +
                   "); nothing was sent. Check the desired query, then rerun with --force";
        if (prune.source_empty && !prune.groups.empty())
            return "the desired queries name no group at all, and sync.prune_groups would delete all " +
                   std::to_string(prune.groups.size()) +
                   " groups cdp-sync created; nothing was sent. Check the desired query, then rerun with --force";
        return "";
    }

    store::PlanOptions plan_options() {
        store::PlanOptions o;
        o.additive = cfg.sync.mode == config::SyncMode::additive;
        o.owns_all = cfg.sync.owns_all_static_groups;
        o.max_groups_per_call = group_cap();
        return o;
    }

    // The customerGroupIdList cap: cdp.max_groups_per_call, or a smaller one learned from
    // refusals (cdp_state), 0 when none is known.
    int group_cap() {
        int cap = cfg.cdp.max_groups_per_call;
        if (auto learned = store.cdp.cdp_state().max_groups_per_call)
            cap = cap > 0 ? std::min(cap, *learned) : *learned;
        return cap;
    }

    // Snapshot results into the run: pages, errors, failed groups out of the plan.
    static void take_snapshot(const SnapshotResult& s, std::vector<store::ManagedGroup>& managed, RunReport& r,
                              std::set<int64_t>& unreliable) {
        r.counts.member_pages += s.pages;
        for (const auto& e : s.errors) r.group_errors.push_back(e);
        drop_failed(managed, s.failed);
        unreliable.insert(s.unreliable.begin(), s.unreliable.end());
    }

    // sync.drift_check: groups whose CDP count differs from the mirror are read again now.
    // Groups read or created this run are exact already.
    void correct_drift(RunState& run, GroupsResult& g, const std::vector<store::ManagedGroup>& read,
                       std::set<int64_t>& unreliable) {
        std::set<int64_t> already_read;
        for (const auto& m : read) already_read.insert(m.group_id);
        std::set<int64_t> existing;
        for (const auto& m : g.existing) existing.insert(m.group_id);
        for (const auto& m : g.managed)
            if (!existing.count(m.group_id)) already_read.insert(m.group_id);  // created this run
        DriftResult d = block_on(run.st.detect_drift(run.id, g.managed, std::move(already_read), std::move(g.listing)));
        if (d.corrections == 0) return;
        run.r.counts.drift_corrections += d.corrections;
        take_snapshot(d.snapshot, g.managed, run.r, unreliable);
        log->info("run {}: drift: {} group(s) changed in the CDP since the last read; re-read, this cycle corrects them",
                  run.id, d.corrections);
    }

    static void hold_unreliable(std::vector<store::ManagedGroup>& managed, const std::set<int64_t>& unreliable) {
        for (auto& m : managed)
            if (unreliable.count(m.group_id)) m.hold_removals = true;
    }

    // No removal is sent before the member identity was confirmed once (check, or here):
    // otherwise removals are held this run (adds go on) and the log says why.
    void hold_removals_until_identity_confirmed(std::vector<store::ManagedGroup>& managed, RunReport& r) {
        const std::string setting = identity_setting(cfg.cdp.customer_id_field);
        if (store.mirror.identity_confirmed(setting)) return;
        IdentityCheck c = block_on(check_member_identity(api, managed, cfg.cdp.customer_id_field));
        if (c.confirmed()) {
            store.mirror.confirm_identity(setting, c.field, c.group_id, c.customer_ids);
            log->info("run {}: {}", r.run_id, c.describe());
            return;
        }
        (c.outcome == IdentityCheck::Outcome::mismatch ? log->error("run {}: {}", r.run_id, c.describe())
                                                       : log->warn("run {}: {}", r.run_id, c.describe()));
        log->warn("run {}: holding {} removal(s) until the member identity is confirmed (cdp-sync check); adds go on",
                  r.run_id, r.plan.removes);
        r.group_errors.push_back({"(member identity)", c.describe() + "; removals held"});
        for (auto& m : managed) m.hold_removals = true;
        store.planner.set_managed(managed);
        r.plan = store.planner.compute_plan(plan_options());
    }

    static void drop_failed(std::vector<store::ManagedGroup>& managed, const std::set<int64_t>& failed) {
        std::erase_if(managed, [&](const store::ManagedGroup& m) { return failed.count(m.group_id) > 0; });
    }

    void log_rejects(const store::SourceStats& s) {
        log->warn("source: {} row(s) rejected", s.rows_rejected);
        for (const auto& [reason, n] : s.rejected_by_reason) log->warn("source: {} row(s): {}", n, reason);
        for (const auto& e : s.examples)
            log->warn("source: rejected row (customer_id '{}', group_name '{}'): {}", e.customer_id, e.group_name,
                      e.reason);
    }
};

Engine::Engine(const config::Config& config, std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(config, std::move(log))) {}

Engine::~Engine() = default;

store::OpenOpCounts Engine::open_op_counts() { return impl_->store.gauges.open_op_counts(); }

void Engine::cancel_calls() {
    net::post(impl_->io, [impl = impl_.get()] { impl->api.stop(); });
}

cdp::ApiStats Engine::api_stats() const { return impl_->api.stats(); }

RunReport Engine::run(const RunRequest& request) {
    auto& im = *impl_;
    auto& st = im.store;
    im.api.count_progress_in(request.progress);
    auto lock = st.lock_apply();
    if (!lock) {
        RunReport r;
        r.kind = request.kind;
        r.status = RunStatus::busy;
        r.error = "another cdp-sync is applying to schema " + st.schema() + "; not starting a second writer";
        im.log->warn("{}", r.error);
        return r;
    }
    if (auto prev = st.runs.interrupted_run()) {
        const RunKind prev_kind = prev->mode;
        im.log->warn("resuming run {} ({}), interrupted in phase {}", prev->id, to_string(prev->mode),
                     to_string(prev->phase));
        std::vector<std::string> only;
        if (prev->details.contains("only_groups"))
            only = prev->details["only_groups"].get<std::vector<std::string>>();
        RunReport r = im.execute(prev->id, prev_kind, prev->force || request.force, only, prev->phase, prev->counts,
                                 request.stop);
        r.resumed = true;
        r.resumed_phase = prev->phase;
        const bool covers = prev_kind == request.kind || prev_kind == RunKind::full;
        if (covers && only == request.only_groups) return r;
        if (r.status == RunStatus::blocked || r.status == RunStatus::interrupted) return r;
    }

    st.mirror.snapshot_gc();
    const int64_t id = st.runs.create_run(request.kind, request.force);
    st.runs.save_counts(id, {}, json{{"only_groups", request.only_groups}});
    im.log->info("run {} ({}) started", id, to_string(request.kind));
    return im.execute(id, request.kind, request.force, request.only_groups, store::RunPhase::source, {}, request.stop);
}

PlanReport Engine::plan(const PlanRequest& request) {
    auto& im = *impl_;
    auto& st = im.store;
    PlanReport p;
    p.max_deletes = im.cfg.sync.max_deletes;
    try {
        p.source = st.source.load_source(im.cfg.database, request.only_groups);
    } catch (const store::SourceError& e) {
        p.error = text::one_line(e.what());
        return p;
    }
    if (p.source.rows_rejected > 0) im.log_rejects(p.source);
    Steps steps = im.steps();
    GroupsResult g = im.block_on(steps.resolve_groups(request.full, true));
    p.group_errors = g.errors;
    p.groups_to_create = g.to_create;
    p.folders_to_create = g.folders_to_create;
    p.descriptions_to_update = g.description_updates;
    p.groups_to_move = g.moves;
    if (g.fatal) {
        p.error = g.fatal->message;
        return p;
    }
    std::vector<store::ManagedGroup> to_read = request.full ? g.existing : g.unsnapshotted;
    if (!to_read.empty()) {
        // Refreshing the mirror is a write to shared state: only without a run applying.
        SnapshotResult s;
        {
            auto lock = st.lock_apply();
            if (!lock) {
                p.error = "another cdp-sync is applying; cannot refresh the mirror now (try again, or plan without --full)";
                return p;
            }
            const int64_t snap = plan_snapshot_id();
            st.mirror.snapshot_gc();
            s = im.block_on(steps.snapshot(snap, to_read));
            st.mirror.snapshot_discard(snap);
        }
        p.member_pages_read = s.pages;
        for (auto& e : s.errors) p.group_errors.push_back(e);
        Impl::drop_failed(g.managed, s.failed);
    }
    const auto tp = Clock::now();
    st.planner.set_managed(g.managed);
    p.plan = st.planner.compute_plan(im.plan_options());
    p.plan_seconds = since(tp);
    Impl::Prune prune = im.prune_plan(steps, request.full ? RunKind::full : RunKind::incremental, request.only_groups);
    for (const auto& g : prune.groups) p.groups_to_delete.push_back(g.name);
    p.prune_removes = prune.removes;
    p.guard_would_block = !im.guard(p.plan.removes, prune, false).empty();
    return p;
}

}  // namespace cdpsync::sync
