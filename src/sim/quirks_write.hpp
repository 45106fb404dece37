// Simulator quirks of the write side: how the CDP answers membership writes (refusals, caps, outages, codes in a 200 body).
// Every field is off by default; docs/simulator.md ("Quirks") documents each one.
// (A transient `code: -1` with any message text is the fault `transient_code_probability`
// with `transient_msg`, faults.hpp.)
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace cdpsync::sim {

struct WriteQuirks {
    // customerAddGroups of a membership already held / customerDeleteGroups of one not held
    // is refused with code -1 (nothing of the call is applied).
    bool refuse_already_applied = false;
    // customerGroupIdList longer than this is refused with code -1 (0 = no cap).
    int max_groups_per_call = 0;
    // The next N membership writes are answered `outage_code` / `outage_msg` and not applied
    // (-1 = every write until the quirk is changed; 0 = off).
    int outage_writes = 0;
    int outage_code = -1;                 // e.g. 429 or 503: an HTTP status in a 200 body
    std::string outage_msg = "服务异常";  // any text: the client must not depend on it

    // Keys as in to_json(); an unknown key or a value of the wrong type throws
    // std::invalid_argument naming it. Keys absent from `j` keep their value in `base`.
    static WriteQuirks from_json(const nlohmann::json& j, const WriteQuirks& base);
    static WriteQuirks from_json(const nlohmann::json& j);
    nlohmann::json to_json() const;
};

}  // namespace cdpsync::sim
