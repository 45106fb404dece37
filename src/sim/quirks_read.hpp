// Simulator quirks of the read side: how the CDP pages member lists (order, shifting pages, null data, totals, record ids).
// Every field is off by default; docs/simulator.md ("Quirks") documents each one.
#pragma once

#include <nlohmann/json.hpp>

namespace cdpsync::sim {

struct ReadQuirks {
    // (fields are added here, each with a one-line comment)

    // Keys as in to_json(); an unknown key or a value of the wrong type throws
    // std::invalid_argument naming it. Keys absent from `j` keep their value in `base`.
    static ReadQuirks from_json(const nlohmann::json& j, const ReadQuirks& base = {});
    nlohmann::json to_json() const;
};

}  // namespace cdpsync::sim
