// The run table: one row per run, moved forward phase by phase so that a killed process's
// run is continued by the next one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/repository.hpp"

namespace cdpsync::store {

using json = nlohmann::json;

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

// The newest `limit` runs of `schema`, newest first.
std::vector<RunRow> recent_runs(Connection& conn, const std::string& schema, int limit);

class Runs : public Repository {
public:
    using Repository::Repository;

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
};

}  // namespace cdpsync::store
