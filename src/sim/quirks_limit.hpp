// Simulator quirks of the limit side: how the CDP counts its rate limit (sliding or fixed window).
// Every field is off by default; docs/simulator.md ("Quirks") documents each one.
#pragma once

#include <nlohmann/json.hpp>

namespace cdpsync::sim {

struct LimitQuirks {
    // The limit counts calls per fixed clock second (from one whole second to the next) instead
    // of per sliding second: up to 2 x the limit can arrive within one second across a boundary.
    bool fixed_window = false;

    // Keys as in to_json(); an unknown key or a value of the wrong type throws
    // std::invalid_argument naming it. Keys absent from `j` keep their value in `base`.
    // (Two overloads, not a `= {}` default: GCC 12 cannot use the member initialisers of a
    // class in a default argument inside that class.)
    static LimitQuirks from_json(const nlohmann::json& j, const LimitQuirks& base);
    static LimitQuirks from_json(const nlohmann::json& j) { return from_json(j, LimitQuirks()); }
    nlohmann::json to_json() const;
};

}  // namespace cdpsync::sim
