// The sync engine: one run = source -> groups -> snapshot -> plan -> guard -> journal ->
// apply, with the run row in cdp_sync.run moved forward at each phase so that a process
// killed at any point is continued by the next one (see Engine::run).
//
// | phase    | what happens                                                  | resumes by          |
// |----------|---------------------------------------------------------------|---------------------|
// | source   | desired queries into session temp tables, rows validated      | re-running it       |
// | groups   | names -> CDP group ids; missing static groups created         | re-running it       |
// | snapshot | full: every managed group paged into the mirror               | the page cursors    |
// | plan     | set-based diff desired vs mirror; the delete guard            | re-running it       |
// | apply    | the journal's pending ops sent, max_in_flight at a time       | the pending ops     |
//
// A full run does not wait for its source before reading: the source loads on the engine's
// session while a second session takes the group list and the pages of the groups the group
// map knows (listed under their mapped name); once the source is loaded the groups phase
// uses that list, and the snapshot reads only the managed groups not read yet.
//
// A stop request ends a run at a safe point as 'interrupted', resumed like a killed one.
//
// One writer: a run holds a session advisory lock on the schema for its whole length; a
// second process does not wait, it reports RunStatus::busy (exit code 4).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "store/gauges.hpp"
#include "store/journal.hpp"
#include "store/planner.hpp"
#include "store/runs.hpp"
#include "store/source.hpp"

namespace cdpsync::cdp {
struct ApiStats;
}

namespace cdpsync::sync {

using json = nlohmann::json;

// A run's mode, as its run row records it.
using RunKind = store::RunMode;
using store::to_string;

struct RunRequest {
    RunKind kind = RunKind::full;
    bool force = false;                    // pass the delete guard
    std::vector<std::string> only_groups;  // resync --group NAME...; empty = all
    // Set (from another thread or a signal) to stop at the next safe point: between snapshot
    // pages, or once the apply's calls in flight are answered. The run is then recorded as
    // 'interrupted' and the next run resumes it.
    const std::atomic<bool>* stop = nullptr;
    // Counts every CDP call answered during the run (another thread may watch it move).
    std::atomic<uint64_t>* progress = nullptr;
};

// Exit codes of resync / run --once, in this order of precedence.
enum class RunStatus {
    succeeded = 0,  // every planned op confirmed, no group errors: the CDP matches
    failed = 1,     // a source failure, group errors, failed or permanent ops
    blocked = 3,    // the delete guard stopped the run before any write
    busy = 4,       // another cdp-sync holds the apply lock
    interrupted = 5,  // stopped on request (RunRequest::stop); the next run resumes it
};
const char* to_string(RunStatus status);

struct GroupIssue {
    std::string name;
    std::string error;
};

struct RunReport {
    int64_t run_id = 0;
    RunKind kind = RunKind::full;
    RunStatus status = RunStatus::failed;
    bool resumed = false;                     // continued an interrupted run
    store::RunPhase resumed_phase = store::RunPhase::source;  // where it continued, when resumed
    store::RunCounts counts;
    store::SourceStats source;
    store::PlanSummary plan;
    std::vector<GroupIssue> group_errors;
    std::vector<store::FailedOp> failures;    // failed and permanent ops (first 20)
    std::vector<std::pair<int64_t, std::string>> guard_sample;  // removals the guard held back
    std::vector<std::string> groups_deleted;  // sync.prune_groups
    std::string error;
    double seconds = 0;
    double plan_seconds = 0;                  // the diff/plan SQL alone
    // Wall seconds per phase this process ran: source, groups, snapshot, plan (diff and
    // plan), journal, apply, prune. A full run loads its source while it reads the group
    // list and the known groups' members: "overlap" is the time the source and those reads
    // ran at once, counted in both phases (the phases minus the overlap fit in `seconds`;
    // the rest is run bookkeeping).
    std::map<std::string, double> phase_seconds;

    int exit_code() const { return static_cast<int>(status); }
    std::string summary_line() const;         // the log's one line per run
    std::string to_text() const;              // what the CLI prints
    json to_json() const;
};

struct PlanRequest {
    bool full = false;  // refresh the mirror from the CDP first (member reads, no writes)
    std::vector<std::string> only_groups;
};

struct PlanReport {
    store::SourceStats source;
    store::PlanSummary plan;
    std::vector<std::string> groups_to_create;
    std::vector<std::string> folders_to_create;
    std::vector<std::string> descriptions_to_update;
    std::vector<std::string> groups_to_move;    // "name -> folder path" (updateCustomerGroup)
    std::vector<std::string> groups_to_delete;  // sync.prune_groups
    int64_t prune_removes = 0;                  // memberships those groups hold (mirror)
    std::vector<GroupIssue> group_errors;
    int64_t member_pages_read = 0;
    bool guard_would_block = false;
    int64_t max_deletes = 0;
    std::string error;   // set when no plan could be made (source failure, ...)
    double plan_seconds = 0;

    int64_t calls() const;  // CDP write calls the run would make (groups, folders, ops)
    int64_t update_calls() const;  // updateCustomerGroup: description updates and moves
    std::string to_text() const;
    json to_json() const;
};

// The id under which `plan --full` of this process snapshots (no run row: negative).
int64_t plan_snapshot_id();

class Engine {
public:
    // Connects to PostgreSQL and migrates the schema (throws on failure).
    explicit Engine(const config::Config& config, std::shared_ptr<spdlog::logger> log = nullptr);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // One run. First continues a run left 'running' by a killed process (its snapshot from
    // the cursors, or its pending ops); when that run was of the same kind (or full, when an
    // incremental one is asked) it is the answer, otherwise a new run follows.
    RunReport run(const RunRequest& request);

    // The same source, groups and planner as run(), writing nothing to the CDP and only
    // read-side caches (group_map lookups, the mirror with --full) to PostgreSQL.
    PlanReport plan(const PlanRequest& request);

    // Open journal ops by state and the mirror's size (the daemon's gauges), on the engine's
    // connection; call where run() is called.
    store::OpenOpCounts open_op_counts();

    // Thread-safe: ends the calls in flight and the retry sleeps of the run in progress (each
    // op stays pending), for good; with `stop` set the run then ends 'interrupted'. Destroy
    // this engine afterwards.
    void cancel_calls();
    // The CDP calls of this engine's life (call where run() is called).
    cdp::ApiStats api_stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cdpsync::sync
