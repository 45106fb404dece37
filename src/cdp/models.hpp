// The CDP's request and response shapes (shared/cdp-openapi.md), with tolerant JSON
// conversion: a Long may be a number or a string, unknown fields are ignored, missing
// optional fields take defaults. Shared by the client and the simulator; no I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace cdpsync::cdp {

using json = nlohmann::json;

// A reply body that is not what the API promises (not JSON, no `code`, wrong types).
class ParseError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

inline constexpr int kStaticGroup = 1;
inline constexpr int kSmartGroup = 2;
inline constexpr int kUnknownGroupType = 0;  // a group record without a usable `type`
inline constexpr const char* kBusinessType = "customer_group";

// Paths, relative to the base URL prefix.
namespace path {
inline constexpr const char* add_group = "/customer-group/addSingleGroup";
inline constexpr const char* delete_group = "/customer-group/deleteCustomerGroup";
inline constexpr const char* update_group = "/customer-group/updateCustomerGroup";
inline constexpr const char* simple_query = "/customer-group/simpleQuery";
inline constexpr const char* members_page = "/customer-group/getCustomerPageByGroupId";
inline constexpr const char* folder_add = "/group/add";
inline constexpr const char* folder_delete = "/group/delete";
inline constexpr const char* folder_update = "/group/update";
inline constexpr const char* folder_tree = "/group/queryTreeFormList";
inline constexpr const char* customer_add_groups = "/customer-group-ref/customerAddGroups";
inline constexpr const char* customer_delete_groups = "/customer-group-ref/customerDeleteGroups";
inline constexpr const char* customer_update_groups = "/customer-group-ref/customerUpdateGroups";
inline constexpr const char* groups_by_customer = "/customer-group-ref/getGroupsByCustomerId";
}  // namespace path

// The envelope every reply shares. `data` is kept raw and decoded per endpoint.
struct Envelope {
    int code = 0;
    std::string msg;
    json data;  // null when absent
};
// Throws ParseError for a non-JSON body, a non-object, or a missing/non-integer `code`.
Envelope parse_envelope(std::string_view body);

// Tolerant scalar readers: return nullopt when the key is absent or null; throw ParseError
// naming the key when present with an unusable type.
std::optional<int64_t> get_long(const json& obj, const char* key);
std::optional<std::string> get_string(const json& obj, const char* key);  // numbers are stringified
std::optional<int64_t> as_long(const json& value);  // number or numeric string; nullopt otherwise

struct Group {
    int64_t id = 0;
    std::string name;
    std::string description;
    std::optional<int64_t> folder_id;  // `groupId` in the API
    int type = kStaticGroup;           // parse_group: kUnknownGroupType when missing
    int64_t customer_total = 0;
};

struct Folder {
    int64_t id = 0;
    std::string code;
    std::string name;
    std::string parent_code;
    std::vector<Folder> children;  // `subList`
};

// A member record from getCustomerPageByGroupId: the id, plus the raw record for display.
struct Member {
    int64_t customer_id = 0;
    json record;
};

// A group a customer belongs to (getGroupsByCustomerId).
struct CustomerGroup {
    int64_t id = 0;
    std::string name;
    std::string code;
    std::optional<int64_t> folder_id;
    std::string status;
    int type = kStaticGroup;
};

template <class T>
struct Page {
    int64_t current = 1;
    int64_t size = 0;
    int64_t total = 0;
    std::vector<T> records;
};

// Requests.
struct CreateGroup {
    std::string name;
    std::string description;
    std::optional<int64_t> folder_id;
};
struct UpdateGroup {
    int64_t id = 0;
    std::optional<std::string> name;
    std::optional<std::string> description;
    std::optional<int64_t> folder_id;
    int type = kStaticGroup;
};
struct GroupQuery {
    std::string search_key;             // "" = none
    std::optional<int64_t> folder_id;
    int64_t current = 1;
    int64_t size = 200;
};
struct MembershipChange {
    int64_t customer_id = 0;
    std::vector<int64_t> group_ids;
};

// JSON conversion (to_json writes the API's field names; from_json is tolerant).
json to_json(const Group& g);
json to_json(const Folder& f);
json to_json(const CustomerGroup& g);
json to_json(const CreateGroup& r);
json to_json(const UpdateGroup& r);
json to_json(const MembershipChange& r);

Group parse_group(const json& j);
Folder parse_folder(const json& j);
CustomerGroup parse_customer_group(const json& j);
// The customer id of a member record. id_field "" (auto): `customerId` when the record has
// one, else `id` (a record may carry both, `id` then being an internal row id). A named
// id_field is read alone. Throws ParseError naming the field when it holds no Long.
Member parse_member(const json& j, const std::string& id_field = "");
// The field parse_member reads for this record under id_field ("" = auto).
std::string member_id_field(const json& record, const std::string& id_field);
// A page reply's `data`. `data: null` (or no `records`) is an empty page with total 0.
// `current` is 0 when the reply does not say which page it is.
template <class T, class F>
Page<T> parse_page(const json& data, F&& parse_record) {
    Page<T> page;
    if (data.is_null()) {
        page.current = 0;
        return page;
    }
    if (!data.is_object()) throw ParseError("page: data is not an object");
    page.current = get_long(data, "current").value_or(0);
    page.size = get_long(data, "size").value_or(0);
    page.total = get_long(data, "total").value_or(0);
    if (auto it = data.find("records"); it != data.end() && !it->is_null()) {
        if (!it->is_array()) throw ParseError("page: records is not an array");
        page.records.reserve(it->size());
        for (const auto& r : *it) page.records.push_back(parse_record(r));
    }
    return page;
}

// A member page reply (getCustomerPageByGroupId) read without building a DOM: only code,
// msg, data.current/size/total and each record's customer id (Member::record stays null).
// nullopt unless the body is a code 0 reply that parse_envelope, parse_page and parse_member
// decode without complaint, to exactly this page; decode any other body the DOM way.
struct MemberPageReply {
    std::string msg;
    Page<Member> page;
};
std::optional<MemberPageReply> read_member_page_fast(std::string_view body, const std::string& id_field);

// The `data` of a reply that is a new id (addSingleGroup, group/add).
int64_t decode_id(const json& data);
// The `data` of a reply that is a list (null = empty).
template <class T, class F>
std::vector<T> decode_list(const json& data, F parse) {
    std::vector<T> out;
    if (data.is_null()) return out;
    if (!data.is_array()) throw ParseError(std::string("data should be an array, got ") + data.type_name());
    out.reserve(data.size());
    for (const auto& item : data) out.push_back(parse(item));
    return out;
}
// The start of a reply body for an error message, not cutting a UTF-8 sequence in half.
std::string snippet(const std::string& body, size_t max = 200);

}  // namespace cdpsync::cdp
