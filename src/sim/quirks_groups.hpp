// Simulator quirks of the groups side: how the CDP creates, names, lists and deletes groups and folders.
// Every field is off by default; docs/simulator.md ("Quirks") documents each one.
#pragma once

#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace cdpsync::sim {

struct GroupQuirks {
    bool duplicate_names = false;          // addSingleGroup / updateCustomerGroup accept a name already taken
    int create_reply_delay_ms = 0;         // addSingleGroup and group/add applied at once, answered this much later
    std::set<std::string> missing_type;    // groups of these names listed by simpleQuery without `type`
    std::set<std::string> unknown_type;    // groups of these names listed by simpleQuery with `type: 3`
    std::set<std::string> unlisted;        // left out of listings (no searchKey) but counted in `total`

    // Keys as in to_json(); an unknown key or a value of the wrong type throws
    // std::invalid_argument naming it. Keys absent from `j` keep their value in `base`.
    static GroupQuirks from_json(const nlohmann::json& j, const GroupQuirks& base);
    static GroupQuirks from_json(const nlohmann::json& j) { return from_json(j, GroupQuirks()); }
    nlohmann::json to_json() const;
};

}  // namespace cdpsync::sim
