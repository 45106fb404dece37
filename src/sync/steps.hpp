// The phases of a run as separate steps over the store and the API (used by engine.cpp;
// exposed for tests that drive one step at a time).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <cstdint>
#include <stdexcept>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "cdp/api.hpp"
#include "config/config.hpp"
#include "store/session.hpp"
#include "sync/db_lane.hpp"
#include "sync/engine.hpp"

namespace cdpsync::sync {

namespace net = boost::asio;

// An outage: this many ops in a row failing the same way (same HTTP status, code and msg;
// every transient failure counts as one way), or this many failing in any way, open the
// circuit breaker. The apply stops and those ops are not charged an attempt.
inline constexpr int kOutageAfterSameFailures = 5;
inline constexpr int kAbortAfterTransientFailures = 20;

// Apply outcomes handed over to the DB lane and not yet committed, at most (group commit):
// a kill -9 makes the next process resend these plus the calls in flight. A commit's cost is
// mostly its round trip, so the cap sets the batch size and with it the apply's ceiling
// (1M x 5% with the limit off: ~16 outcomes a batch at max(16, 4 x) and the workers waiting
// on the lane 60% of the time; ~28 a batch at this cap).
inline int uncommitted_outcome_cap(int max_in_flight) { return std::max(64, 8 * max_in_flight); }

// What a refused membership write turned out to be (Steps::judge_refusal).
enum class Refusal {
    done,           // the CDP already holds what the op wanted: done, mirror updated
    split,          // a multi-group op: send its halves instead
    retry_later,    // failed; the identical op of a later run waits op_backoff(attempts)
    permanent,      // known permanent (unknown customer, smart group): waits the long interval
    group_missing,  // "group does not exist": the group is rechecked; retry later
};
const char* to_string(Refusal r);

// The wait before an op that failed `attempts` times (>= 1) is sent again on a later run:
// 1 min doubling up to 1 h.
std::chrono::seconds op_backoff(int attempts);
// The wait of a permanent refusal (sync.permanent_retry_interval_h).
std::chrono::seconds permanent_wait(const config::Config& cfg);

// Why a step ended the run before its end: the caller decides on `cause`, people read
// `message` (the run's error).
struct Abort {
    enum class Cause {
        source_failed,    // a source query failed (store::SourceError): nothing changes
        groups_unlisted,  // the CDP's group list could not be read: no group can be resolved
        auth_refused,     // the CDP refused the token: the apply stopped sending
        calls_cancelled,  // the engine's calls were cancelled (shutdown): the apply stopped sending
        cdp_down,         // an outage opened the circuit breaker: the rest stay pending
    };
    Cause cause;
    std::string message;
};

// The CDP's whole group list (simpleQuery), or why it could not be read.
struct GroupListing {
    std::vector<cdp::Group> groups;
    std::string problem;    // "" when listed
    bool complete = true;   // as many groups as the listing's total: a name not among them is not there
};

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
    std::optional<Abort> fatal;                      // no group could be resolved
    std::optional<GroupListing> listing;             // incremental: the listing taken, for the drift check
};

// Passes over a group whose listing shifted during the read, before its read is unreliable.
inline constexpr int kMaxReadPasses = 3;

struct SnapshotResult {
    int64_t pages = 0;
    std::vector<GroupIssue> errors;
    std::set<int64_t> failed;      // group ids whose snapshot failed (left out of the plan)
    std::set<int64_t> unreliable;  // no consistent pass: hold this group's removals this run
};

struct DriftResult {
    int64_t corrections = 0;  // groups whose CDP count differed from the mirror, read again
    SnapshotResult snapshot;  // their re-read
};

struct PruneResult {
    std::vector<std::string> deleted;
    std::vector<GroupIssue> errors;
};

struct ApplyResult {
    std::optional<Abort> aborted;  // why the apply stopped early; nullopt when every op was tried
};

// A stop was asked (RunRequest::stop) and the step ended at a safe point: between pages of
// the snapshot, or with the apply's calls in flight answered and recorded.
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("stopped on request") {}
};

struct Steps {
    const config::Config& cfg;
    spdlog::logger& log;
    store::Session& store;  // only through `db` while a step runs (the engine's thread between steps)
    DbLane& db;
    cdp::Api& api;
    const std::atomic<bool>* stop = nullptr;
    // Ends this step like `stop`, for a reason of the engine's own (a full run's reads once
    // the source it overlaps failed); the step's caller tells the two apart.
    const std::atomic<bool>* cancel = nullptr;

    bool stop_requested() const { return (stop && stop->load()) || (cancel && cancel->load()); }
    void throw_if_stopped() const {
        if (stop_requested()) throw Interrupted();
    }

    // Resolves every desired group name; full lists all groups (simpleQuery), incremental
    // trusts the group map and looks up only unknown names. dry_run creates and updates
    // nothing (negative placeholder ids for groups to create).
    // A full run may pass the listing it read already (list_groups) instead of one more.
    net::awaitable<GroupsResult> resolve_groups(bool full, bool dry_run,
                                                std::optional<GroupListing> listing = std::nullopt);
    // Every group of the CDP (simpleQuery, all pages).
    net::awaitable<GroupListing> list_groups();
    // Pages each group into the mirror under `snapshot_id`, continuing saved cursors.
    net::awaitable<SnapshotResult> snapshot(int64_t snapshot_id, std::vector<store::ManagedGroup> groups);
    // sync.drift_check: lists the groups (simpleQuery) and re-reads, into the mirror under
    // `snapshot_id`, each managed group whose customerTotal differs from the mirror's count.
    // Groups in `already_read` (read or created this run) are not compared. A `listing` this
    // run took already (the groups phase's) is used instead of listing again.
    net::awaitable<DriftResult> detect_drift(int64_t snapshot_id, std::vector<store::ManagedGroup> managed,
                                             std::set<int64_t> already_read,
                                             std::optional<GroupListing> listing = std::nullopt);
    // Sends the run's pending ops, max_in_flight at a time, recording each outcome; first one
    // op alone when the circuit breaker is not closed (executor.cpp).
    net::awaitable<ApplyResult> apply(int64_t run_id);
    // A membership write refused with `e`: reads the customer's static groups to tell a write
    // already applied from a real refusal (refusal.cpp).
    net::awaitable<Refusal> judge_refusal(const store::Op& op, const cdp::CallError& e);
    // owns_all: the op's list plus the static groups the customer holds that cdp-sync does
    // not manage (`managed`), read just before the replace; nullopt with `error` set when the
    // read failed (the replace is then not sent).
    net::awaitable<std::optional<store::Op>> keep_unmanaged(store::Op op, const std::set<int64_t>& managed,
                                                            std::string& error);
    // sync.prune_groups: the static groups cdp-sync created that `desired` (the loaded
    // source's groups) no longer names, and their deletion (a group already gone counts as
    // deleted).
    std::vector<store::GroupMapping> prune_candidates(const std::vector<store::DesiredGroup>& desired);
    net::awaitable<PruneResult> prune(std::vector<store::GroupMapping> groups);
};

// The groups a full run resolves to their mapped id whenever the source still names them:
// mapped (no error, static) and listed under that name with that id, as a static group.
// Limited to `only_groups` when it is not empty. A full run reads them before its source is
// loaded (Engine: the reads overlap the source load).
std::vector<store::ManagedGroup> known_groups(const std::map<std::string, store::GroupMapping>& group_map,
                                              const GroupListing& listing,
                                              const std::vector<std::string>& only_groups);

}  // namespace cdpsync::sync
