// Accounting shared by the fault scenarios, and the table faults_tests prints at the end.
//
// How ops are counted, in every scenario:
//  - ops lost: for each managed group, the desired customers the CDP does not hold plus the
//    members the CDP holds that the database does not want (a lost removal). A desired group
//    missing from the CDP loses all its desired members.
//  - a *copy* is one membership write (customerAddGroups, customerDeleteGroups,
//    customerUpdateGroups) the simulator applied (write log, code 0), keyed by
//    (endpoint, customer id, sorted group ids).
//  - a copy is *in flight* (its sender could not know it had been applied) when
//      the simulator broke its reply after applying it (WriteLogEntry::fault: reset, truncated),
//      the simulator delayed it by at least the client's timeout (the client gave up on it),
//      a proxy replaced its reply with a malformed one (the wrong-types scenario),
//      or a kill -9 / PostgreSQL outage struck before its op was recorded 'done': for a kill,
//      the copy was in the log right after the process died while its op was pending,
//      failed or permanent in the journal; for an outage, the copy was applied before
//      PostgreSQL was back and its op was recorded 'done' only after the outage began.
//  - ops duplicated = over all keys, max(0, copies - 1 - in-flight copies); plus every extra
//    static group of one name in the CDP (a group created twice).
// So a write sent twice with no fault, timeout, kill or outage between is a duplicate; a
// write retried after its reply was lost is not.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "sim/server.hpp"
#include "store/session.hpp"

namespace cdpsync::testing::faults {

using Rows = std::vector<std::pair<int64_t, std::string>>;
using WriteKey = std::tuple<std::string, int64_t, std::vector<int64_t>>;

inline bool is_membership_write(const std::string& endpoint) {
    return endpoint.find("customer-group-ref/customer") != std::string::npos;
}

inline WriteKey key_of(const sim::WriteLogEntry& e) {
    std::vector<int64_t> ids = e.group_ids;
    std::sort(ids.begin(), ids.end());
    return {e.endpoint, e.customer_id, ids};
}

inline std::string endpoint_of(const std::string& op_kind) {
    if (op_kind == "add") return "customer-group-ref/customerAddGroups";
    if (op_kind == "remove") return "customer-group-ref/customerDeleteGroups";
    return "customer-group-ref/customerUpdateGroups";
}

// The journal's ops matching `where` (SQL over the op table), as write keys.
inline std::set<WriteKey> journal_keys(const std::string& dsn, const std::string& schema, const std::string& where) {
    std::set<WriteKey> out;
    pqxx::connection c(dsn);
    pqxx::nontransaction tx(c);
    for (const auto& r : tx.exec("SELECT customer_id, kind, group_ids::text FROM " + schema + ".op WHERE " + where)) {
        auto ids = store::parse_pg_array(r[2].as<std::string>());
        std::sort(ids.begin(), ids.end());
        out.insert({endpoint_of(r[1].as<std::string>()), r[0].as<int64_t>(), ids});
    }
    return out;
}

struct WriteCount {
    int64_t copies = 0;      // membership writes applied
    int64_t in_flight = 0;   // copies excused (see above)
    int64_t duplicated = 0;  // copies beyond one per key that no fault explains
    std::vector<std::string> examples;
};

class Ledger {
public:
    explicit Ledger(int client_timeout_ms) : timeout_ms_(client_timeout_ms) {}

    // After a kill -9 (the process is gone, the journal is still): every copy applied so far
    // whose op is not 'done'.
    // Returns how many copies this kill left unrecorded that neither an earlier kill nor a
    // fault explains (at most the calls in flight).
    int64_t after_kill(const std::vector<sim::WriteLogEntry>& log, const std::set<WriteKey>& not_done) {
        int64_t added = 0;
        for (size_t i = 0; i < log.size(); ++i)
            if (log[i].code == 0 && is_membership_write(log[i].endpoint) && not_done.count(key_of(log[i])))
                if (excused_.insert(i).second && log[i].fault.empty() && log[i].delay_ms < timeout_ms_) ++added;
        return added;
    }
    // After an outage that ended at `back`: copies applied before `back` whose op was recorded
    // 'done' only after it (`recorded_after`, from the journal's updated_at).
    void after_outage(const std::vector<sim::WriteLogEntry>& log, std::chrono::system_clock::time_point back,
                      const std::set<WriteKey>& recorded_after) {
        for (size_t i = 0; i < log.size(); ++i)
            if (log[i].code == 0 && log[i].time < back && is_membership_write(log[i].endpoint) &&
                recorded_after.count(key_of(log[i])))
                excused_.insert(i);
    }
    // A proxy mangled the reply of one applied write with this key.
    void mangled(const WriteKey& key) { ++mangled_[key]; }

    WriteCount count(const std::vector<sim::WriteLogEntry>& log) const {
        WriteCount out;
        std::map<WriteKey, std::pair<int64_t, int64_t>> per_key;  // copies, in flight
        for (size_t i = 0; i < log.size(); ++i) {
            const auto& e = log[i];
            if (e.code != 0 || !is_membership_write(e.endpoint)) continue;
            auto& [copies, in_flight] = per_key[key_of(e)];
            ++copies;
            ++out.copies;
            if (!e.fault.empty() || e.delay_ms >= timeout_ms_ || excused_.count(i)) ++in_flight;
        }
        for (auto& [key, n] : per_key) {
            if (auto m = mangled_.find(key); m != mangled_.end()) n.second += m->second;
            const int64_t excused = std::min(n.second, n.first - 1);
            out.in_flight += excused;
            const int64_t extra = std::max<int64_t>(0, n.first - 1 - excused);
            out.duplicated += extra;
            if (extra > 0 && out.examples.size() < 5)
                out.examples.push_back(std::get<0>(key) + " customer " + std::to_string(std::get<1>(key)) + " x" +
                                       std::to_string(n.first));
        }
        return out;
    }

private:
    int timeout_ms_;
    std::set<size_t> excused_;
    std::map<WriteKey, int64_t> mangled_;
};

// Lost ops (see above) for the desired `rows` over `managed` groups (the names in `rows`
// plus any given, e.g. a group whose desired rows all went away).
inline int64_t lost_ops(sim::State& st, const Rows& rows, std::vector<std::string> managed = {}) {
    std::map<std::string, std::set<int64_t>> want;
    for (const auto& [c, g] : rows) want[g].insert(c);
    for (const auto& name : managed) want[name];
    int64_t lost = 0;
    for (const auto& [name, members] : want) {
        std::optional<int64_t> id;
        for (const auto& g : st.find_groups_by_name(name))
            if (g.type == cdp::kStaticGroup) id = g.id;
        if (!id) {
            lost += static_cast<int64_t>(members.size());
            continue;
        }
        const auto got = st.members_of(*id);
        const std::set<int64_t> have(got.begin(), got.end());
        for (int64_t c : members) lost += have.count(c) ? 0 : 1;
        for (int64_t c : have) lost += members.count(c) ? 0 : 1;
    }
    return lost;
}

// Extra static groups sharing a name (a create sent twice).
inline int64_t duplicate_groups(sim::State& st) {
    std::map<std::string, int64_t> by_name;
    for (const auto& g : st.groups())
        if (g.type == cdp::kStaticGroup) ++by_name[g.name];
    int64_t extra = 0;
    for (const auto& [name, n] : by_name) extra += n - 1;
    return extra;
}

// A scenario's end state: the ledger's count of the write log, memberships lost, and ops
// duplicated (writes no fault explains, plus static groups created twice). Expects no loss
// and no duplicate.
struct EndState {
    WriteCount writes;
    int64_t lost = 0;
    int64_t duplicated = 0;
};
inline EndState check_end_state(const Ledger& ledger, const std::vector<sim::WriteLogEntry>& log, sim::State& st,
                                const Rows& rows) {
    EndState e;
    e.writes = ledger.count(log);
    e.lost = lost_ops(st, rows);
    const int64_t groups_twice = duplicate_groups(st);
    e.duplicated = e.writes.duplicated + groups_twice;
    EXPECT_EQ(e.lost, 0);
    EXPECT_EQ(e.writes.duplicated, 0) << ::testing::PrintToString(e.writes.examples);
    EXPECT_EQ(groups_twice, 0);
    return e;
}

// "5xx 31, reset 12" from the simulator's statistics (outcomes fault_*), or "none".
inline std::string injected_faults(const nlohmann::json& stats, int64_t* total = nullptr) {
    std::string out;
    int64_t sum = 0;
    if (stats.contains("outcomes"))
        for (const auto& [k, v] : stats["outcomes"].items()) {
            if (k.rfind("fault_", 0) != 0 || v.get<int64_t>() == 0) continue;
            std::string name = k.substr(6);
            if (name == "http_5xx") name = "5xx";
            if (name == "burst_429") name = "429";
            if (!out.empty()) out += ", ";
            out += name + " " + std::to_string(v.get<int64_t>());
            sum += v.get<int64_t>();
        }
    if (total) *total = sum;
    return out.empty() ? "none" : out;
}

inline int64_t run_retries(const std::string& dsn, const std::string& schema) {
    pqxx::connection c(dsn);
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT coalesce(sum(retries), 0) FROM " + schema + ".run")[0].as<int64_t>();
}

// ---- the table

struct ScenarioRow {
    std::string scenario;
    std::string faults;
    int64_t retries = 0;
    bool correct = false;
    int64_t lost = 0;
    int64_t duplicated = 0;
    int64_t in_flight = 0;  // copies resent because their first outcome was unknown
};

inline std::vector<ScenarioRow>& table() {
    static std::vector<ScenarioRow> rows;
    return rows;
}

inline void record(ScenarioRow row) {
    std::cerr << "[ fault row ] " << row.scenario << ": " << row.faults << "; retries " << row.retries
              << "; correct " << (row.correct ? "yes" : "NO") << "; lost " << row.lost << "; duplicated "
              << row.duplicated << " (in flight " << row.in_flight << ")\n";
    table().push_back(std::move(row));
}

class TablePrinter : public ::testing::Environment {
public:
    void TearDown() override {
        if (table().empty()) return;
        std::cout << "\n| scenario | faults injected | retries | final state correct | ops lost | ops duplicated |\n"
                  << "|---|---|---|---|---|---|\n";
        for (const auto& r : table())
            std::cout << "| " << r.scenario << " | " << r.faults << " | " << r.retries << " | "
                      << (r.correct ? "yes" : "**no**") << " | " << r.lost << " | " << r.duplicated
                      << (r.in_flight > 0 ? " (" + std::to_string(r.in_flight) + " resent in flight)" : "") << " |\n";
        std::cout << std::flush;
    }
};

inline ::testing::Environment* const table_printer = ::testing::AddGlobalTestEnvironment(new TablePrinter);

// The fault RNG seed: fixed unless CDP_SYNC_FAULT_SEED says otherwise (printed by each scenario).
inline uint64_t fault_seed() {
    const char* s = std::getenv("CDP_SYNC_FAULT_SEED");
    return s && *s ? std::stoull(s) : 20261125;
}

inline bool soak() {
    const char* s = std::getenv("CDP_SYNC_SOAK");
    return s && *s && std::string(s) != "0";
}

}  // namespace cdpsync::testing::faults
