// The simulator's in-memory CDP: a folder tree, static and smart groups, customers and
// their memberships, plus a log of write calls. Thread-safe: every member function takes
// the one mutex, so tests may read and seed it from their own thread while the server runs.
//
// Two kinds of operations:
//  - the API operations (create_group, customer_add_groups, ...) apply the CDP's rules and
//    answer a typed Outcome whose `error` becomes the reply's `msg` with `code: -1`;
//  - the seeding operations (add_group, add_membership, generate, ...) bypass the rules, so
//    tests can build any state, including smart-group members and duplicate names.
//
// Memory: a group's members are a sorted vector of customer ids plus small pending
// add/remove sets merged on the next read; a customer is a small vector of group ids.
// 10 million memberships fit in well under 2 GB.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "cdp/models.hpp"
#include "sim/quirks.hpp"

namespace cdpsync::sim {

using json = nlohmann::json;

// The result of an API operation: `error` empty means success.
template <class T>
struct Outcome {
    T value{};
    std::string error;
    bool ok() const { return error.empty(); }
    static Outcome success(T v) { return Outcome{std::move(v), {}}; }
    static Outcome failure(std::string msg) { return Outcome{T{}, std::move(msg)}; }
};
struct None {};
// A membership write answered with a failure and not applied (quirk write.outage_writes).
struct WriteOutage {
    int code = -1;
    std::string msg;
};

// One write call as the simulator handled it (tests look for duplicates here).
struct WriteLogEntry {
    std::string endpoint;            // e.g. "customer-group-ref/customerAddGroups"
    int64_t customer_id = 0;         // 0 for group and folder writes
    std::vector<int64_t> group_ids;  // the request's group ids (or the group/folder written)
    std::chrono::system_clock::time_point time;
    int code = 0;                    // the reply's code: 0 applied, -1 refused
    std::string msg;
    // Set by the server: the fault that broke the reply after the call was applied
    // ("reset", "truncated_body"; "" when the reply went out whole), and the latency
    // injected before it. A client that retries such a write legitimately sends it twice.
    std::string fault;
    int64_t delay_ms = 0;
};
json to_json(const WriteLogEntry& e);

// Bulk generation: `customers` consecutive ids from first_customer_id, `groups` new groups
// (the first `smart_groups` of them of type 2), and `memberships` memberships spread evenly
// (each customer gets memberships/customers groups, the remainder going to the first ones).
struct GenerateSpec {
    int64_t first_customer_id = 1;
    int64_t customers = 0;
    int64_t groups = 0;
    int64_t smart_groups = 0;
    int64_t memberships = 0;
    uint64_t seed = 1;
    std::string group_name_prefix = "gen-group-";
    std::optional<int64_t> folder_id;
};
struct GenerateResult {
    std::vector<int64_t> group_ids;
    int64_t customers = 0;
    int64_t memberships = 0;
};

class State {
public:
    State();
    ~State();
    State(const State&) = delete;
    State& operator=(const State&) = delete;

    // ---- seeding (no API rules) ----
    // Throws std::invalid_argument for an unknown parent code.
    int64_t add_folder(const std::string& name, const std::string& parent_code = "");
    // Throws std::invalid_argument for an unknown folder or a type other than 1 or 2.
    int64_t add_group(const std::string& name, const std::string& description = "",
                      std::optional<int64_t> folder_id = std::nullopt,
                      int type = cdp::kStaticGroup);
    void add_customers(int64_t first_id, int64_t count);
    void ensure_customer(int64_t id);
    // Creates the customer if needed; any group type. False if already a member.
    // Throws std::invalid_argument for an unknown group.
    bool add_membership(int64_t customer_id, int64_t group_id);
    bool remove_membership(int64_t customer_id, int64_t group_id);
    // Many at once, much faster than one by one. Returns how many were new.
    int64_t add_memberships(const std::vector<std::pair<int64_t, int64_t>>& pairs);
    GenerateResult generate(const GenerateSpec& spec);
    void reset();

    // ---- reading ----
    std::vector<int64_t> members_of(int64_t group_id);          // sorted; empty if unknown
    std::vector<int64_t> groups_of(int64_t customer_id, int type = 0);  // 0: any type; sorted
    std::vector<cdp::Group> find_groups_by_name(const std::string& name);
    std::optional<cdp::Group> group(int64_t id);
    std::vector<cdp::Group> groups();
    std::optional<cdp::Folder> folder(int64_t id);               // without children
    std::optional<cdp::Folder> find_folder_by_name(const std::string& name);
    bool has_customer(int64_t id);
    bool is_member(int64_t customer_id, int64_t group_id);
    int64_t membership_count();
    int64_t customer_count();
    int64_t group_count();
    // {"folders": [...flat...], "groups": [... with "members" when include_members ...],
    //  "customers": count, "memberships": count}
    json dump(bool include_members = true);
    json dump_group(int64_t group_id);  // {"id", "name", "type", "members": [...]}; null if unknown

    // ---- API operations (the CDP's rules) ----
    Outcome<int64_t> create_folder(const std::string& name, const std::string& parent_code);
    Outcome<None> update_folder(int64_t id, const std::string& name);
    // Refused while any group in the folder or its sub-folders has members. Deletes the
    // sub-folders too; their (empty) groups move to no folder.
    Outcome<None> delete_folder(int64_t id);
    std::vector<cdp::Folder> folder_tree();
    Outcome<int64_t> create_group(const std::string& name, const std::string& description,
                                  std::optional<int64_t> folder_id, int type);
    Outcome<None> update_group(int64_t id, const std::optional<std::string>& name,
                               const std::optional<std::string>& description,
                               std::optional<int64_t> folder_id, int type);
    Outcome<None> delete_group(int64_t id);
    // search_key: substring of the name ("" = all); records ordered by id.
    cdp::Page<cdp::Group> query_groups(const std::string& search_key,
                                       std::optional<int64_t> folder_id, int64_t current,
                                       int64_t size);
    Outcome<cdp::Page<int64_t>> members_page(int64_t group_id, int64_t current, int64_t size);
    Outcome<None> customer_add_groups(int64_t customer_id, const std::vector<int64_t>& group_ids);
    Outcome<None> customer_delete_groups(int64_t customer_id,
                                         const std::vector<int64_t>& group_ids);
    // Replaces the customer's static groups; smart-group memberships stay.
    Outcome<None> customer_update_groups(int64_t customer_id,
                                         const std::vector<int64_t>& group_ids);
    Outcome<std::vector<cdp::CustomerGroup>> customer_groups(int64_t customer_id, int type);
    // Quirk write.outage_writes: the reply owed to this membership write (one write of the
    // window consumed), or nullopt outside an outage.
    std::optional<WriteOutage> take_write_outage();

    // ---- quirks (how this CDP behaves where the document is silent) ----
    Quirks quirks();
    void set_quirks(Quirks quirks);

    // ---- write log ----
    void log_write(WriteLogEntry entry);
    std::vector<WriteLogEntry> write_log();
    void clear_write_log();

private:
    struct Data;
    std::mutex mutex_;
    std::unique_ptr<Data> d_;
};

// The plausible customer record getCustomerPageByGroupId returns for an id (the same
// every time for the same id).
json customer_record(int64_t customer_id);
// The same record, appended to `out` as JSON text (fast path for pages).
// with_internal_id (ReadQuirks::customer_id_records): `id` is an internal row id and the
// customer's id is in `customerId`.
void append_customer_record(std::string& out, int64_t customer_id, bool with_internal_id = false);

}  // namespace cdpsync::sim
