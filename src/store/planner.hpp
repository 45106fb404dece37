// The planner: desired (the Source's temp tables) vs mirror as set operations in
// PostgreSQL, into session temp tables, and the journal entry of the plan. Works on the
// Connection the Source loaded into.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/journal.hpp"
#include "store/repository.hpp"
#include "store/runs.hpp"

namespace cdpsync::store {

using json = nlohmann::json;

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

class Planner : public Repository {
public:
    using Repository::Repository;

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
};

}  // namespace cdpsync::store
