// Simulator quirks of the limit side: how the CDP counts its rate limit (sliding or fixed window).
// Every field is off by default; docs/simulator.md ("Quirks") documents each one.
#pragma once

#include <nlohmann/json.hpp>

namespace cdpsync::sim {

struct LimitQuirks {
    // (fields are added here, each with a one-line comment)

    // Keys as in to_json(); an unknown key or a value of the wrong type throws
    // std::invalid_argument naming it. Keys absent from `j` keep their value in `base`.
    static LimitQuirks from_json(const nlohmann::json& j, const LimitQuirks& base = {});
    nlohmann::json to_json() const;
};

}  // namespace cdpsync::sim
