#include "config/text.hpp"

namespace cdpsync::text {
namespace {

constexpr const char* kWhitespace = " \t\r\n\v\f";

}  // namespace

std::string one_line(std::string s) {
    for (auto& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    s.erase(s.find_last_not_of(kWhitespace) + 1);
    return s;
}

std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(kWhitespace);
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(kWhitespace) - b + 1);
}

bool is_plain_identifier(const std::string& name) {
    if (name.empty() || name.size() > 63 || (name[0] >= '0' && name[0] <= '9')) return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

}  // namespace cdpsync::text
