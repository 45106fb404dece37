#include "cdp/models.hpp"

#include <charconv>
#include <climits>
#include <string>

namespace cdpsync::cdp {

namespace {

ParseError bad_type(const char* key, const json& value, const char* wanted) {
    return ParseError(std::string("field '") + key + "' should be " + wanted + ", got " +
                      value.type_name());
}

void put_optional_long(json& j, const char* key, const std::optional<int64_t>& value) {
    if (value) j[key] = *value;
}

// An int field (code, type): a Long outside int's range is refused, not truncated.
std::optional<int> get_int(const json& obj, const char* key) {
    auto v = get_long(obj, key);
    if (!v) return std::nullopt;
    if (*v < INT_MIN || *v > INT_MAX) throw bad_type(key, obj.at(key), "an int");
    return static_cast<int>(*v);
}

// Deeper than any reply the API sends (its deepest is a folder tree); the decoders recurse
// (subList) and copy records, so a deeper document could exhaust the stack.
constexpr int kMaxDepth = 256;

bool nests_deeper_than(std::string_view body, int limit) {
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : body) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

Folder parse_folder_at(const json& j, int depth);

}  // namespace

std::optional<int64_t> as_long(const json& value) {
    if (value.is_number_unsigned()) {
        const auto u = value.get<uint64_t>();
        if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
        return static_cast<int64_t>(u);
    }
    if (value.is_number_integer()) return value.get<int64_t>();
    if (value.is_number_float()) {
        const double d = value.get<double>();
        // Outside [-2^63, 2^63) the conversion is undefined behaviour.
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return std::nullopt;
        const auto i = static_cast<int64_t>(d);
        if (static_cast<double>(i) == d) return i;
        return std::nullopt;
    }
    if (value.is_string()) {
        const auto& s = value.get_ref<const std::string&>();
        int64_t out = 0;
        const char* first = s.data();
        const char* last = s.data() + s.size();
        auto [ptr, ec] = std::from_chars(first, last, out);
        if (ec == std::errc() && ptr == last && !s.empty()) return out;
    }
    return std::nullopt;
}

std::optional<int64_t> get_long(const json& obj, const char* key) {
    if (!obj.is_object()) return std::nullopt;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (auto v = as_long(*it)) return v;
    // An empty string for an optional Long is common in hand-written replies: treat as absent.
    if (it->is_string() && it->get_ref<const std::string&>().empty()) return std::nullopt;
    throw bad_type(key, *it, "a Long (number or numeric string)");
}

std::optional<std::string> get_string(const json& obj, const char* key) {
    if (!obj.is_object()) return std::nullopt;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
    if (it->is_number()) return it->dump();
    throw bad_type(key, *it, "a string");
}

Envelope parse_envelope(std::string_view body) {
    if (nests_deeper_than(body, kMaxDepth))
        throw ParseError("reply nests deeper than " + std::to_string(kMaxDepth) + " levels");
    json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        std::string head(body.substr(0, 80));
        throw ParseError("reply is not JSON (" + std::to_string(body.size()) + " bytes, starting \"" +
                         head + "\")");
    }
    if (!j.is_object()) throw ParseError(std::string("reply is a JSON ") + j.type_name() + ", not an object");
    auto code = j.find("code");
    if (code == j.end() || code->is_null()) throw ParseError("reply has no 'code' field");
    auto code_value = as_long(*code);
    if (!code_value || *code_value < INT_MIN || *code_value > INT_MAX) throw bad_type("code", *code, "an integer");
    Envelope env;
    env.code = static_cast<int>(*code_value);
    env.msg = get_string(j, "msg").value_or("");
    if (auto data = j.find("data"); data != j.end()) env.data = std::move(*data);
    return env;
}

json to_json(const Group& g) {
    json j{{"id", g.id},
           {"name", g.name},
           {"description", g.description},
           {"type", g.type},
           {"customerTotal", g.customer_total}};
    j["groupId"] = g.folder_id ? json(*g.folder_id) : json(nullptr);
    return j;
}

json to_json(const Folder& f) {
    json children = json::array();
    for (const auto& c : f.children) children.push_back(to_json(c));
    return json{{"id", f.id},
                {"code", f.code},
                {"name", f.name},
                {"parentCode", f.parent_code},
                {"subList", std::move(children)}};
}

json to_json(const CustomerGroup& g) {
    json j{{"id", g.id},
           {"name", g.name},
           {"code", g.code},
           {"status", g.status},
           {"type", std::to_string(g.type)}};
    j["groupId"] = g.folder_id ? json(std::to_string(*g.folder_id)) : json(nullptr);
    return j;
}

json to_json(const CreateGroup& r) {
    json j{{"name", r.name}, {"type", kStaticGroup}};
    if (!r.description.empty()) j["description"] = r.description;
    put_optional_long(j, "groupId", r.folder_id);
    return j;
}

json to_json(const UpdateGroup& r) {
    json j{{"customerGroupId", r.id}, {"type", r.type}};
    if (r.name) j["name"] = *r.name;
    if (r.description) j["description"] = *r.description;
    put_optional_long(j, "groupId", r.folder_id);
    return j;
}

json to_json(const MembershipChange& r) {
    return json{{"customerId", r.customer_id}, {"customerGroupIdList", r.group_ids}};
}

Group parse_group(const json& j) {
    if (!j.is_object()) throw ParseError("group record is not an object");
    Group g;
    auto id = get_long(j, "id");
    if (!id) throw ParseError("group record has no 'id'");
    g.id = *id;
    g.name = get_string(j, "name").value_or("");
    g.description = get_string(j, "description").value_or("");
    g.folder_id = get_long(j, "groupId");
    // A missing type is not "static": such a group is never written (DESIGN.md).
    g.type = get_int(j, "type").value_or(kUnknownGroupType);
    g.customer_total = get_long(j, "customerTotal").value_or(0);
    return g;
}

Folder parse_folder(const json& j) { return parse_folder_at(j, 0); }

namespace {

Folder parse_folder_at(const json& j, int depth) {
    if (!j.is_object()) throw ParseError("folder record is not an object");
    if (depth > kMaxDepth) throw ParseError("folder tree deeper than " + std::to_string(kMaxDepth) + " levels");
    Folder f;
    auto id = get_long(j, "id");
    if (!id) throw ParseError("folder record has no 'id'");
    f.id = *id;
    f.code = get_string(j, "code").value_or("");
    f.name = get_string(j, "name").value_or("");
    f.parent_code = get_string(j, "parentCode").value_or("");
    if (auto it = j.find("subList"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) throw bad_type("subList", *it, "an array");
        for (const auto& c : *it) f.children.push_back(parse_folder_at(c, depth + 1));
    }
    return f;
}

}  // namespace

CustomerGroup parse_customer_group(const json& j) {
    if (!j.is_object()) throw ParseError("customer group record is not an object");
    CustomerGroup g;
    auto id = get_long(j, "id");
    if (!id) throw ParseError("customer group record has no 'id'");
    g.id = *id;
    g.name = get_string(j, "name").value_or("");
    g.code = get_string(j, "code").value_or("");
    g.folder_id = get_long(j, "groupId");
    g.status = get_string(j, "status").value_or("");
    g.type = get_int(j, "type").value_or(kStaticGroup);
    return g;
}

std::string member_id_field(const json& record, const std::string& id_field) {
    if (!id_field.empty()) return id_field;
    if (record.is_object()) {
        auto it = record.find("customerId");
        if (it != record.end() && !it->is_null()) return "customerId";
    }
    return "id";
}

Member parse_member(const json& j, const std::string& id_field) {
    if (!j.is_object()) throw ParseError("member record is not an object");
    const std::string field = member_id_field(j, id_field);
    std::optional<int64_t> id = get_long(j, field.c_str());
    if (!id)
        throw ParseError("member record has no '" + field + "'" +
                         (id_field.empty() ? " (nor 'customerId')" : " (cdp.customer_id_field)"));
    return Member{*id, j};
}

int64_t decode_id(const json& data) {
    if (auto id = as_long(data)) return *id;
    throw ParseError(std::string("data should be an id (Long), got ") + data.type_name());
}

std::string snippet(const std::string& body, size_t max) {
    if (body.size() <= max) return body;
    size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(body[end]) & 0xC0) == 0x80) --end;
    return body.substr(0, end) + "...";
}

}  // namespace cdpsync::cdp
