// The source: the user's desired-memberships and desired-groups queries, run into session
// temp tables (pg_temp.cdp_*) with every row validated. The temp tables stay in the session:
// the Planner on the same Connection diffs them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "store/repository.hpp"

namespace cdpsync::store {

using json = nlohmann::json;

// The source query (desired memberships or groups) failed: the run fails, nothing changes.
class SourceError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

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

// One configured query tried the way a run uses it, without reading rows (`check`).
struct QueryCheck {
    std::string key;      // "database.desired_memberships"
    std::string problem;  // "" when it runs
};
// desired_memberships, and desired_groups and change_query when set. A dead PostgreSQL
// throws; a query that does not run is a problem in the result.
std::vector<QueryCheck> check_source_queries(Connection& conn, const config::DatabaseConfig& db);

class Source : public Repository {
public:
    using Repository::Repository;

    // Runs the desired queries into session temp tables, validating every row. Only groups
    // named in `only_groups` are kept when it is not empty. Throws SourceError.
    SourceStats load_source(const config::DatabaseConfig& db, const std::vector<std::string>& only_groups = {});
    std::vector<DesiredGroup> desired_groups();
};

}  // namespace cdpsync::store
