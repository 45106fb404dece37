#include "sim/quirks_write.hpp"

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

WriteQuirks WriteQuirks::from_json(const nlohmann::json& j, const WriteQuirks& base) {
    using quirks_detail::as;
    WriteQuirks q = base;
    quirks_detail::for_each_key(j, "write", [&](const std::string& key, const nlohmann::json& v) {
        if (key == "refuse_already_applied") q.refuse_already_applied = as<bool>(v, "write", key);
        else if (key == "max_groups_per_call") q.max_groups_per_call = as<int>(v, "write", key);
        else if (key == "outage_writes") q.outage_writes = as<int>(v, "write", key);
        else if (key == "outage_code") q.outage_code = as<int>(v, "write", key);
        else if (key == "outage_msg") q.outage_msg = as<std::string>(v, "write", key);
        else return false;
        return true;
    });
    return q;
}

WriteQuirks WriteQuirks::from_json(const nlohmann::json& j) { return from_json(j, WriteQuirks()); }

nlohmann::json WriteQuirks::to_json() const {
    return {{"refuse_already_applied", refuse_already_applied},
            {"max_groups_per_call", max_groups_per_call},
            {"outage_writes", outage_writes},
            {"outage_code", outage_code},
            {"outage_msg", outage_msg}};
}

}  // namespace cdpsync::sim
