#include "sim/quirks.hpp"

#include <stdexcept>

#include "sim/quirks_util.hpp"

namespace cdpsync::sim {

Quirks Quirks::from_json(const nlohmann::json& j, const Quirks& base) {
    Quirks q = base;
    quirks_detail::for_each_key(j, "quirks", [&](const std::string& section, const nlohmann::json& v) {
        if (section == "write") q.write = WriteQuirks::from_json(v, q.write);
        else if (section == "read") q.read = ReadQuirks::from_json(v, q.read);
        else if (section == "groups") q.groups = GroupQuirks::from_json(v, q.groups);
        else if (section == "limit") q.limit = LimitQuirks::from_json(v, q.limit);
        else return false;
        return true;
    });
    return q;
}

nlohmann::json Quirks::to_json() const {
    return {{"write", write.to_json()}, {"read", read.to_json()}, {"groups", groups.to_json()},
            {"limit", limit.to_json()}};
}

void Quirks::set_flag(const std::string& flag) {
    const auto eq = flag.find('=');
    const auto dot = flag.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq)
        throw std::invalid_argument("--quirk needs SECTION.KEY=VALUE, got " + flag);
    const std::string section = flag.substr(0, dot);
    const std::string key = flag.substr(dot + 1, eq - dot - 1);
    const std::string text = flag.substr(eq + 1);
    nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded()) value = text;
    *this = from_json({{section, {{key, value}}}}, *this);
}

}  // namespace cdpsync::sim
