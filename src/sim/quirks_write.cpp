#include "sim/quirks_write.hpp"

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

WriteQuirks WriteQuirks::from_json(const nlohmann::json& j, const WriteQuirks& base) {
    WriteQuirks q = base;
    quirks_detail::for_each_key(j, "write", [&](const std::string& /*key*/, const nlohmann::json& /*value*/) {
        return false;  // no key known yet
    });
    return q;
}

nlohmann::json WriteQuirks::to_json() const { return nlohmann::json::object(); }

}  // namespace cdpsync::sim
