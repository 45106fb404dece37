// Simulator quirks of the read side: how the CDP pages member lists (order, shifting pages, null data, totals, record ids).
// Every field is off by default; docs/simulator.md ("Quirks") documents each one.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace cdpsync::sim {

struct ReadQuirks {
    bool newest_first = false;        // member lists in descending customer id (the newest first)
    int64_t churn_adds = 0;           // each member-page read first adds this many new customers to the group
    int64_t churn_removes = 0;        // ... and removes this many of its members (the lowest ids)
    int64_t churn_reads = -1;         // how many member-page reads churn in all (-1 = every read)
    bool null_data = false;           // empty lists and pages are answered `data: null`
    int64_t total_overcount = 0;      // member pages' `total` counts this many more than the group holds
    bool customer_id_records = false; // member records carry `customerId` and an unrelated internal `id`

    // Keys as in to_json(); an unknown key or a value of the wrong type throws
    // std::invalid_argument naming it. Keys absent from `j` keep their value in `base`.
    // (Two overloads: a `= {}` default cannot name a struct whose members have initialisers.)
    static ReadQuirks from_json(const nlohmann::json& j, const ReadQuirks& base);
    static ReadQuirks from_json(const nlohmann::json& j) { return from_json(j, ReadQuirks()); }
    nlohmann::json to_json() const;
};

// The internal `id` a member record carries under ReadQuirks::customer_id_records: never a
// customer id the simulator hands out.
inline int64_t internal_member_row_id(int64_t customer_id) { return 7'000'000'000'000 + customer_id * 3; }

}  // namespace cdpsync::sim
