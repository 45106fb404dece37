#include "sim/quirks_groups.hpp"

#include <stdexcept>

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

GroupQuirks GroupQuirks::from_json(const nlohmann::json& j, const GroupQuirks& base) {
    using quirks_detail::as;
    GroupQuirks q = base;
    quirks_detail::for_each_key(j, "groups", [&](const std::string& key, const nlohmann::json& value) {
        if (key == "duplicate_names") q.duplicate_names = as<bool>(value, "groups", key);
        else if (key == "create_reply_delay_ms") q.create_reply_delay_ms = as<int>(value, "groups", key);
        else if (key == "missing_type") q.missing_type = as<std::set<std::string>>(value, "groups", key);
        else if (key == "unknown_type") q.unknown_type = as<std::set<std::string>>(value, "groups", key);
        else if (key == "unlisted") q.unlisted = as<std::set<std::string>>(value, "groups", key);
        else return false;
        return true;
    });
    if (q.create_reply_delay_ms < 0) throw std::invalid_argument("quirk groups.create_reply_delay_ms must be >= 0");
    return q;
}

nlohmann::json GroupQuirks::to_json() const {
    return {{"duplicate_names", duplicate_names},
            {"create_reply_delay_ms", create_reply_delay_ms},
            {"missing_type", missing_type},
            {"unknown_type", unknown_type},
            {"unlisted", unlisted}};
}

}  // namespace cdpsync::sim
