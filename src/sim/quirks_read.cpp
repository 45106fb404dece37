#include "sim/quirks_read.hpp"

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

ReadQuirks ReadQuirks::from_json(const nlohmann::json& j, const ReadQuirks& base) {
    ReadQuirks q = base;
    quirks_detail::for_each_key(j, "read", [&](const std::string& /*key*/, const nlohmann::json& /*value*/) {
        return false;  // no key known yet
    });
    return q;
}

nlohmann::json ReadQuirks::to_json() const { return nlohmann::json::object(); }

}  // namespace cdpsync::sim
