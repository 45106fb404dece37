// The phases of a run as separate steps over the store and the API (used by engine.cpp;
// exposed for tests that drive one step at a time).
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "cdp/api.hpp"
#include "config/config.hpp"
#include "store/store.hpp"
#include "sync/engine.hpp"

namespace cdpsync::sync {

namespace net = boost::asio;

// After a CallError that is neither transient nor an auth/transport problem, an op is
// retried on later runs until it has been refused this many times, then it is permanent.
inline constexpr int kPermanentAfterAttempts = 3;
// This many consecutive transient failures stop the apply phase (the CDP is down): the
// rest stay pending instead of each burning its full retry budget.
inline constexpr int kAbortAfterTransientFailures = 20;

struct GroupsResult {
    std::vector<store::ManagedGroup> managed;        // what the planner diffs
    std::vector<store::ManagedGroup> existing;       // managed, already in the CDP before this run
    std::vector<store::ManagedGroup> unsnapshotted;  // existing ones the mirror never held
    std::vector<GroupIssue> errors;                  // per group; the rest go on
    std::vector<std::string> to_create;              // dry run: groups a run would create
    std::vector<std::string> folders_to_create;
    std::vector<std::string> description_updates;
    std::vector<std::string> moves;                  // dry run: "name -> folder path"
    int64_t created = 0;
    std::string fatal;                               // no group could be resolved
};

struct SnapshotResult {
    int64_t pages = 0;
    std::vector<GroupIssue> errors;
    std::set<int64_t> failed;  // group ids whose snapshot failed (left out of the plan)
};

struct PruneResult {
    std::vector<std::string> deleted;
    std::vector<GroupIssue> errors;
};

struct ApplyResult {
    std::string aborted;  // why the apply stopped early, "" when every op was tried
};

// A stop was asked (RunRequest::stop) and the step ended at a safe point: between pages of
// the snapshot, or with the apply's calls in flight answered and recorded.
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("stopped on request") {}
};

struct Steps {
    const config::Config& cfg;
    spdlog::logger& log;
    store::Store& store;
    cdp::Api& api;
    const std::atomic<bool>* stop = nullptr;

    bool stop_requested() const { return stop && stop->load(); }
    void throw_if_stopped() const {
        if (stop_requested()) throw Interrupted();
    }

    // Resolves every desired group name; full lists all groups (simpleQuery), incremental
    // trusts the group map and looks up only unknown names. dry_run creates and updates
    // nothing (negative placeholder ids for groups to create).
    net::awaitable<GroupsResult> resolve_groups(bool full, bool dry_run);
    // Pages each group into the mirror under `snapshot_id`, continuing saved cursors.
    net::awaitable<SnapshotResult> snapshot(int64_t snapshot_id, std::vector<store::ManagedGroup> groups);
    // Sends the run's pending ops, max_in_flight at a time, recording each outcome.
    net::awaitable<ApplyResult> apply(int64_t run_id);
    // sync.prune_groups: the static groups cdp-sync created that `desired` (the loaded
    // source's groups) no longer names, and their deletion (a group already gone counts as
    // deleted).
    std::vector<store::GroupMapping> prune_candidates(const std::vector<store::DesiredGroup>& desired);
    net::awaitable<PruneResult> prune(std::vector<store::GroupMapping> groups);
};

}  // namespace cdpsync::sync
