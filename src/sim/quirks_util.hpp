// Shared parsing for the quirk sections (sim/quirks_*.cpp).
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace cdpsync::sim::quirks_detail {

// Calls f(key, value) for each key of the object `j`; f returns false for an unknown key,
// which throws std::invalid_argument naming "section.key".
template <class F>
void for_each_key(const nlohmann::json& j, const std::string& section, F&& f) {
    if (j.is_null()) return;
    if (!j.is_object()) throw std::invalid_argument("quirks." + section + " must be an object");
    for (const auto& [key, value] : j.items())
        if (!f(key, value)) throw std::invalid_argument("unknown quirk " + section + "." + key);
}

// The value as T, or std::invalid_argument naming the quirk.
template <class T>
T as(const nlohmann::json& value, const std::string& section, const std::string& key) {
    try {
        return value.get<T>();
    } catch (const nlohmann::json::exception&) {
        throw std::invalid_argument("quirk " + section + "." + key + " has the wrong type: " + value.dump());
    }
}

}  // namespace cdpsync::sim::quirks_detail
