// PostgreSQL side of cdp-sync: the `cdp_sync` schema (migrations, run history, journal,
// mirror, group map, snapshot cursors), the source queries and the set-based planner.
// No HTTP here. A dead or refusing PostgreSQL throws (store::classify_db_error tells what); a source query that
// fails throws SourceError so the engine can record a failed run.
//
// Working tables of one session are TEMP tables (pg_temp.cdp_*): the validated source rows,
// the managed groups and the plan. They never leave the session, so `plan` and a run in
// another process never see each other's work; what must survive a kill -9 (journal, mirror,
// cursors, run row) lives in the schema.
//
// | table            | holds                                                              |
// |------------------|--------------------------------------------------------------------|
// | schema_version   | applied migrations                                                 |
// | group_map        | desired group name -> CDP group id, type, description, folder      |
// | remote_member    | the mirror: (group_id, customer_id) the CDP is known to hold        |
// | snapshot_cursor  | per snapshot (= run id) and group: next page to read, done          |
// | snapshot_member  | pages read of a group whose snapshot is not finished yet            |
// | run              | one row per run: mode, phase, status, counts, error                 |
// | op               | the journal: one planned write call per row and its outcome         |
// | cdp_state        | one row: the circuit breaker, the group list cap learned             |
// | identity_confirmation | member id fields confirmed against getGroupsByCustomerId       |
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "config/text.hpp"
#include "store/connection.hpp"

namespace cdpsync::store {

using json = nlohmann::json;

// The source query (desired memberships or groups) failed: the run fails, nothing changes.
class SourceError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The schema-name rule (config/text.hpp): the one database.schema is validated with.
using text::is_plain_identifier;
// The DSN with any password replaced by "***" (key=value and URI forms), safe to log.
std::string redact_dsn(const std::string& dsn);
// Postgres array text literal of bigints and back: {1,2,3} (libpqxx's conversions).
std::string to_pg_array(const std::vector<int64_t>& values);
std::vector<int64_t> parse_pg_array(const std::string& text);

// Why the CDP cannot take a group name, or "" when it can (same rule as the SQL checks).
std::string group_name_problem(const std::string& name);
inline constexpr int kMaxGroupNameChars = 64;

struct RejectExample {
    std::string reason;
    std::string customer_id;  // as text, as the query returned it ("" for NULL)
    std::string group_name;
};

struct SourceStats {
    int64_t rows_read = 0;       // membership rows returned by the query
    int64_t rows_rejected = 0;   // invalid rows (membership and group rows)
    int64_t duplicates = 0;      // valid membership rows repeating another
    int64_t desired = 0;         // distinct valid (customer, group name) pairs
    int64_t group_rows = 0;      // rows of the desired-groups query
    std::map<std::string, int64_t> rejected_by_reason;
    std::vector<RejectExample> examples;  // up to 10
    json to_json() const;
};

// A group the source mentions (in memberships or in the desired-groups query).
struct DesiredGroup {
    std::string name;
    std::optional<std::string> description;  // from desired_groups; nullopt = not managed
    std::optional<std::string> folder;       // from desired_groups; nullopt = cdp.folder
    int64_t members = 0;                     // distinct desired customers
    bool retained = false;  // no row names it any more, but it was synced before (no desired_groups)
};

struct GroupMapping {
    std::string name;
    std::optional<int64_t> group_id;
    int type = 1;
    std::optional<std::string> description;
    std::optional<int64_t> folder_id;
    bool created_by_us = false;
    bool snapshotted = false;  // the mirror holds a complete snapshot of the group
    std::string error;
    bool recheck = false;      // a write was refused as if the group did not exist: confirm it
};

// A group the planner works on: desired rows with this name are diffed against the mirror
// rows of this id. A negative id is a placeholder for a group `plan` would create.
struct ManagedGroup {
    std::string name;
    int64_t group_id = 0;
    bool hold_removals = false;  // its read this run cannot be trusted: plan no removal in it
};

struct PlanOptions {
    bool additive = false;       // never remove
    bool owns_all = false;       // one customerUpdateGroups per changed customer
    int max_groups_per_call = 0; // add/remove lists longer than this are split (0 = no cap)
    int samples = 5;             // sample customers per group
};

struct GroupPlan {
    std::string name;
    int64_t group_id = 0;
    int64_t desired = 0;
    int64_t mirror = 0;
    int64_t adds = 0;
    int64_t removes = 0;
    std::vector<int64_t> sample_adds;
    std::vector<int64_t> sample_removes;
};

struct PlanSummary {
    int64_t adds = 0;              // memberships to add
    int64_t removes = 0;           // memberships to remove
    int64_t customers = 0;         // customers with any change
    int64_t add_calls = 0;         // customerAddGroups calls
    int64_t remove_calls = 0;      // customerDeleteGroups calls
    int64_t set_calls = 0;         // customerUpdateGroups calls
    std::vector<GroupPlan> groups; // managed groups, by name
    int64_t write_calls() const { return add_calls + remove_calls + set_calls; }
    json to_json() const;
};

enum class OpKind { add, remove, set };
const char* to_string(OpKind kind);
OpKind parse_op_kind(const std::string& s);

struct Op {
    int64_t id = 0;
    int64_t run_id = 0;
    int64_t customer_id = 0;
    OpKind kind = OpKind::add;
    std::vector<int64_t> group_ids;
    int attempts = 0;
};

struct OpOutcome {
    bool ok = false;
    bool permanent = false;  // known to be refused for good (retried after retry_in anyway)
    // Failed: the identical op of a later incremental run waits this long (next_attempt_at).
    std::optional<std::chrono::seconds> retry_in;
    int http_status = 0;
    std::optional<int> cdp_code;
    std::string msg;
};

struct OpTotals {
    int64_t pending = 0, done = 0, failed = 0, permanent = 0;
    int64_t total() const { return pending + done + failed + permanent; }
};

struct FailedOp {
    Op op;
    std::string state;
    int http_status = 0;
    std::optional<int> cdp_code;
    std::string msg;
    std::string next_attempt_at;  // ISO time, "" when not waiting
};

// How journal_plan treats a new op identical to one that failed before.
struct CarryOver {
    bool reset = false;  // a full run: every op is sent, marks and attempts start over
};

// The circuit breaker over membership writes (shared/DESIGN.md: an outage is many ops in a
// row failing the same way): open stops the apply; the next run probes with one op.
enum class Breaker { closed, open, half_open };
const char* to_string(Breaker b);

struct CdpState {
    Breaker breaker = Breaker::closed;
    std::string breaker_reason;
    std::optional<int> max_groups_per_call;  // learned from refusals
};

// Counters kept on the run row.
struct RunCounts {
    int64_t rows_read = 0, rows_rejected = 0, duplicates = 0;
    int64_t adds = 0, removes = 0, ops_planned = 0;
    int64_t ops_done = 0, ops_failed = 0, ops_permanent = 0;
    int64_t calls = 0, retries = 0, failures = 0, member_pages = 0;
    int64_t groups_created = 0, group_errors = 0;
    int64_t drift_corrections = 0;  // groups re-read because simpleQuery's count differed from the mirror
};

// The run row's state: enums here, the same words as text in the run table.
enum class RunMode { full, incremental };
enum class RunPhase { source, groups, snapshot, plan, apply, done };
// What the run row records. sync::RunStatus is a run's outcome for its caller (exit codes;
// `busy` has no row, `running` and `abandoned` are no outcome).
enum class RunStatus { running, interrupted, succeeded, failed, blocked, abandoned };
const char* to_string(RunMode mode);
const char* to_string(RunPhase phase);
const char* to_string(RunStatus status);
// Throw std::invalid_argument on a word that is none of the enum's.
RunMode parse_run_mode(const std::string& s);
RunPhase parse_run_phase(const std::string& s);
RunStatus parse_run_status(const std::string& s);

struct RunRow {
    int64_t id = 0;
    RunMode mode = RunMode::full;
    RunPhase phase = RunPhase::source;
    RunStatus status = RunStatus::running;
    bool force = false;
    RunCounts counts;
    std::string error;
    json details;        // reject examples, group errors, permanent failures
    std::string started_at;  // YYYY-MM-DD HH:MM:SS, server time
    double seconds = 0;      // since started_at, until finished_at when it finished
};

struct SnapshotCursor {
    int64_t group_id = 0;
    int64_t next_page = 1;
    int page_size = 0;  // page numbers count pages of this size
    bool done = false;
    bool unreliable = false;  // done, but no pass of the read was consistent
};

// One configured query tried the way a run uses it, without reading rows (`check`).
struct QueryCheck {
    std::string key;      // "database.desired_memberships"
    std::string problem;  // "" when it runs
};
// desired_memberships, and desired_groups and change_query when set. A dead PostgreSQL
// throws; a query that does not run is a problem in the result.
std::vector<QueryCheck> check_source_queries(Connection& conn, const config::DatabaseConfig& db);

// `tmpl` with every "@." replaced by `quoted_schema` and a dot.
std::string with_schema(const std::string& tmpl, const std::string& quoted_schema);

// Applies missing migrations of the cdp_sync schema named `schema` in one transaction under
// an advisory lock; idempotent and safe with concurrent callers. Returns the version.
int migrate_schema(Connection& conn, const std::string& schema, spdlog::logger& log);

// The newest `limit` runs of `schema`, newest first.
std::vector<RunRow> recent_runs(Connection& conn, const std::string& schema, int limit);

class Store;

// The one-writer lock (a session advisory lock on the schema), held while this lives.
class [[nodiscard]] ApplyLock {
public:
    explicit ApplyLock(Store& store) : store_(&store) {}
    ApplyLock(ApplyLock&& other) noexcept : store_(std::exchange(other.store_, nullptr)) {}
    ApplyLock& operator=(ApplyLock&&) = delete;
    ApplyLock(const ApplyLock&) = delete;
    ~ApplyLock();  // unlocks; a broken connection has released it already

private:
    Store* store_;
};

// Journal ops by state, for monitoring. A state listed in kOpenOpStates is counted (0 when
// no op is in it): a new state is one more entry there.
inline constexpr const char* kOpenOpStates[] = {"pending", "backoff", "failed", "permanent"};
struct OpenOpCounts {
    std::map<std::string, int64_t> by_state;  // every kOpenOpStates entry
    int64_t mirror_memberships = 0;           // rows of the mirror (remote_member)
};

class Store {
public:
    // Validates the schema name (std::invalid_argument) and connects (throws: see
    // classify_db_error).
    Store(const std::string& dsn, std::string schema, std::shared_ptr<spdlog::logger> log = nullptr);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    Connection& connection();
    const std::string& schema() const { return schema_; }
    // `tmpl` with every "@." replaced by the quoted schema and a dot.
    std::string sql(const std::string& tmpl) const;

    // --- schema.cpp
    static constexpr int kSchemaVersion = 5;
    int migrate();  // migrate_schema on this connection
    // The one-writer lock (session level, released when the connection closes); nullopt
    // when another session holds it.
    std::optional<ApplyLock> lock_apply();
    bool try_lock_apply();
    void unlock_apply();

    // --- gauges.cpp
    // Open journal ops of every run by state, and the mirror's size (monitoring).
    OpenOpCounts open_op_counts();

    // --- source.cpp
    // Runs the desired queries into session temp tables, validating every row. Only groups
    // named in `only_groups` are kept when it is not empty. Throws SourceError.
    SourceStats load_source(const config::DatabaseConfig& db, const std::vector<std::string>& only_groups = {});
    std::vector<DesiredGroup> desired_groups();

    // --- mirror.cpp
    std::map<std::string, GroupMapping> group_map();
    void save_group(const GroupMapping& g);  // clears recheck
    // A write was refused as if this group did not exist: the next groups phase confirms it
    // (and recreates it when it is really gone) before trusting the mapping again.
    void flag_group_recheck(int64_t group_id);
    // Drops a group deleted in the CDP from the group map and the mirror.
    void forget_group(const std::string& name, int64_t group_id);
    // Forgets the mirror of a group (it was deleted in the CDP, or is new and empty).
    void reset_group_mirror(int64_t group_id, bool snapshotted);
    void snapshot_begin(int64_t snapshot_id, const std::vector<int64_t>& group_ids, int page_size);
    // Back to page 1 with a new page size, dropping the pages read (the size changed).
    void snapshot_restart_group(int64_t snapshot_id, int64_t group_id, int page_size);
    std::map<int64_t, SnapshotCursor> snapshot_cursors(int64_t snapshot_id);
    // One page, atomically with its cursor; ignored (false) unless page == next_page.
    bool snapshot_page(int64_t snapshot_id, int64_t group_id, int64_t page,
                       const std::vector<int64_t>& customer_ids);
    // Several pages in one transaction, each with its cursor as snapshot_page does; returns
    // how many were taken (a page not at its cursor is ignored).
    struct PageRows {
        int64_t snapshot_id = 0;
        int64_t group_id = 0;
        int64_t page = 0;
        std::vector<int64_t> customer_ids;
    };
    int64_t snapshot_pages(const std::vector<PageRows>& pages);
    // Replaces the group's mirror with the pages read, marks the cursor done (and unreliable
    // when no pass of the read was consistent). Returns members.
    int64_t snapshot_finish_group(int64_t snapshot_id, int64_t group_id, bool unreliable = false);
    // The pages read so far of an unfinished group: rows, and distinct customers among them.
    struct PassCount {
        int64_t rows = 0;
        int64_t distinct = 0;
    };
    PassCount snapshot_pass_count(int64_t snapshot_id, int64_t group_id);
    // Mirror members of each of `group_ids` (0 for a group the mirror holds nothing of).
    std::map<int64_t, int64_t> mirror_counts(const std::vector<int64_t>& group_ids);
    // Member identity: whether reading customer ids under the setting `field` ("auto" or a
    // field name) was confirmed (by check, or a run before its first removal), and the record
    // of a confirmation (`resolved_field`: the record field the ids came from).
    bool identity_confirmed(const std::string& field);
    void confirm_identity(const std::string& field, const std::string& resolved_field, int64_t group_id,
                          const std::vector<int64_t>& customer_ids);
    void snapshot_discard(int64_t snapshot_id);
    // Drops the pages and cursors of every snapshot that no running run owns (call with the
    // apply lock held).
    void snapshot_gc();
    int64_t mirror_count(int64_t group_id);

    // --- plan.cpp
    void set_managed(const std::vector<ManagedGroup>& groups);
    // Diff desired vs mirror into session temp tables and summarise. Same SQL for plan and run.
    PlanSummary compute_plan(const PlanOptions& options);
    // Up to `limit` planned removals (customer, group name), for the guard's log.
    std::vector<std::pair<int64_t, std::string>> sample_removals(int limit);
    // Writes the computed plan to the journal and moves the run to phase 'apply', in one
    // transaction. Failed/permanent ops of earlier runs are superseded; unless carry.reset, an
    // identical op that failed before keeps its attempt count, and its state while its
    // next_attempt_at is in the future (else it is pending again).
    void journal_plan(int64_t run_id, const RunCounts& counts, const CarryOver& carry = {});

    // --- journal.cpp
    int64_t create_run(RunMode mode, bool force);
    void set_phase(int64_t run_id, RunPhase phase);
    void save_counts(int64_t run_id, const RunCounts& counts, const json& details);
    void finish_run(int64_t run_id, RunStatus status, const std::string& error,
                    const RunCounts& counts, const json& details);
    // A run stopped on request: resumable like a killed one (interrupted_run finds it).
    void interrupt_run(int64_t run_id, const std::string& why, const RunCounts& counts, const json& details);
    std::optional<RunRow> run(int64_t run_id);
    // The newest run left 'running' (its process died) or 'interrupted', now 'running' again
    // under this process; older ones are marked abandoned. Call only while holding the apply
    // lock.
    std::optional<RunRow> interrupted_run();
    std::vector<RunRow> recent_runs(int limit);
    // Pending ops of a run with id > after_id, by id.
    std::vector<Op> pending_ops(int64_t run_id, int64_t after_id, int limit);
    // Records one outcome and, on success, the mirror change, in one transaction.
    void record_op(const Op& op, const OpOutcome& outcome);
    // Many outcomes (and their mirror changes) in one transaction (group commit).
    void record_ops(const std::vector<std::pair<Op, OpOutcome>>& outcomes);
    OpTotals op_totals(int64_t run_id);
    std::vector<FailedOp> failed_ops(int64_t run_id, int limit);
    // Replaces a pending op by one pending op per part (same run), in one transaction; the
    // original becomes 'superseded'. Returns the new ops.
    std::vector<Op> split_op(const Op& op, const std::vector<std::vector<int64_t>>& parts);
    // Failed/permanent ops of the newest run that has any, waiting to be sent again.
    std::vector<FailedOp> waiting_ops(int limit);
    // The operator's "retry now": clears the waits and attempts of every failed/permanent op
    // so the next run sends them. Returns how many.
    int64_t clear_op_waits();

    // --- cdp_state (journal.cpp)
    CdpState cdp_state();
    // True when the state changed (the caller logs it once).
    bool set_breaker(Breaker b, const std::string& reason);
    // Stores `cap` when no smaller one is known.
    void learn_group_cap(int cap);

private:
    std::shared_ptr<spdlog::logger> log_;
    std::string schema_;
    std::string quoted_schema_;
    Connection conn_;
};

}  // namespace cdpsync::store
