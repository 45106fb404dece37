#include "sim/quirks_limit.hpp"

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

LimitQuirks LimitQuirks::from_json(const nlohmann::json& j, const LimitQuirks& base) {
    LimitQuirks q = base;
    quirks_detail::for_each_key(j, "limit", [&](const std::string& key, const nlohmann::json& value) {
        if (key != "fixed_window") return false;
        q.fixed_window = quirks_detail::as<bool>(value, "limit", key);
        return true;
    });
    return q;
}

nlohmann::json LimitQuirks::to_json() const { return {{"fixed_window", fixed_window}}; }

}  // namespace cdpsync::sim
