#include "sim/quirks_limit.hpp"

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

LimitQuirks LimitQuirks::from_json(const nlohmann::json& j, const LimitQuirks& base) {
    LimitQuirks q = base;
    quirks_detail::for_each_key(j, "limit", [&](const std::string& /*key*/, const nlohmann::json& /*value*/) {
        return false;  // no key known yet
    });
    return q;
}

nlohmann::json LimitQuirks::to_json() const { return nlohmann::json::object(); }

}  // namespace cdpsync::sim
