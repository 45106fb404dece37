#include "sim/quirks_groups.hpp"

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

GroupQuirks GroupQuirks::from_json(const nlohmann::json& j, const GroupQuirks& base) {
    GroupQuirks q = base;
    quirks_detail::for_each_key(j, "groups", [&](const std::string& /*key*/, const nlohmann::json& /*value*/) {
        return false;  // no key known yet
    });
    return q;
}

nlohmann::json GroupQuirks::to_json() const { return nlohmann::json::object(); }

}  // namespace cdpsync::sim
