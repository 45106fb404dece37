// Simulator quirks of the write side: how the CDP answers membership writes (refusals, caps, outages, codes in a 200 body).
// Every field is off by default; docs/simulator.md ("Quirks") documents each one.
#pragma once

#include <nlohmann/json.hpp>

namespace cdpsync::sim {

struct WriteQuirks {
    // (fields are added here, each with a one-line comment)

    // Keys as in to_json(); an unknown key or a value of the wrong type throws
    // std::invalid_argument naming it. Keys absent from `j` keep their value in `base`.
    static WriteQuirks from_json(const nlohmann::json& j, const WriteQuirks& base = {});
    nlohmann::json to_json() const;
};

}  // namespace cdpsync::sim
