// Fuzzes what the CDP client does with a reply body: parse_envelope, then every decoder
// Api::Impl (src/cdp/api.cpp) applies to `data` (id, group page, member page, folder tree,
// a customer's groups; the decoders themselves live in models.cpp), the SAX reader of member
// pages (member_page_sax.cpp, checked against the DOM path), and the snippet an error reply
// is shown by.
//
// A ParseError is the documented way to refuse a body. A finding is anything else: another
// exception escaping, a sanitizer report, or a decoded number that is not the one the body
// holds (a Long that does not fit, wrapped or truncated instead of refused).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <charconv>
#include <climits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/models.hpp"

using namespace cdpsync::cdp;

namespace {

// --- The oracle ---

[[noreturn]] void finding(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_cdp_reply: %s: %s\n", what, detail.c_str());
    std::abort();
}

// The Long a JSON value holds, worked out independently of as_long: nullopt unless it is
// exactly one int64 (an integral number in range, or a decimal string of one).
std::optional<int64_t> exact_long(const json& v) {
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
        return static_cast<int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (!std::isfinite(d) || std::floor(d) != d) return std::nullopt;
        if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return std::nullopt;
        return static_cast<int64_t>(d);
    }
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        int64_t out = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) return out;
    }
    return std::nullopt;
}

// A decoded Long must equal the one the body holds (absent or unusable: nothing to compare).
void check_long(const json& obj, const char* key, std::optional<int64_t> decoded, const char* what) {
    auto it = obj.find(key);
    std::optional<int64_t> expected;
    if (it != obj.end() && !it->is_null()) expected = exact_long(*it);
    if (!expected) return;  // absent or a default: nothing to compare
    if (!decoded || *decoded != *expected)
        finding(what, std::string(key) + " is " + it->dump() + " in the body but decoded as " +
                          (decoded ? std::to_string(*decoded) : std::string("nothing")));
}

// An int field (type, code) must not silently take another value when the Long is out of
// int range.
void check_int(const json& obj, const char* key, int decoded, const char* what) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return;
    auto expected = exact_long(*it);
    if (expected && *expected != decoded)
        finding(what, std::string(key) + " is " + it->dump() + " in the body but decoded as " +
                          std::to_string(decoded));
}

void check_folder(const json& j, const Folder& f) {
    check_long(j, "id", f.id, "folder");
    auto it = j.find("subList");
    if (it == j.end() || it->is_null()) return;
    if (it->size() != f.children.size()) finding("folder", "children lost");
    for (size_t i = 0; i < f.children.size(); ++i) check_folder((*it)[i], f.children[i]);
}

template <class F>
void expect_parse_error_only(F&& f) {
    try {
        f();
    } catch (const ParseError&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
    const std::string body(reinterpret_cast<const char*>(bytes), size);

    // The error-reply path (decorate_from_body): envelope, else a snippet.
    (void)snippet(body);

    Envelope env;
    try {
        env = parse_envelope(body);
    } catch (const ParseError&) {
        return 0;
    }

    const json whole = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (whole.is_discarded() || !whole.is_object()) finding("envelope", "accepted a body that is not a JSON object");
    check_int(whole, "code", env.code, "envelope");
    if (!exact_long(whole.at("code"))) finding("envelope", "accepted code " + whole.at("code").dump());
    const json& data = env.data;

    // Every decoder runs on every body, whatever `code` says: a superset of what the client does.
    expect_parse_error_only([&] {
        const int64_t id = decode_id(data);
        if (exact_long(data) != id) finding("id", data.dump() + " decoded as " + std::to_string(id));
    });
    expect_parse_error_only([&] {
        const Page<Group> page = parse_page<Group>(data, parse_group);
        check_long(data, "total", page.total, "group page");
        if (page.records.empty()) return;
        const json& records = data.at("records");
        for (size_t i = 0; i < page.records.size(); ++i) {
            check_long(records[i], "id", page.records[i].id, "group");
            check_long(records[i], "groupId", page.records[i].folder_id, "group");
            check_long(records[i], "customerTotal", page.records[i].customer_total, "group");
            check_int(records[i], "type", page.records[i].type, "group");
        }
    });
    for (const std::string id_field : {"id", "customerId", "memberNo"}) {
        expect_parse_error_only([&] {
            const Page<Member> page =
                parse_page<Member>(data, [&](const json& r) { return parse_member(r, id_field); });
            check_long(data, "current", page.current, "member page");
            check_long(data, "size", page.size, "member page");
            if (page.records.empty()) return;
            const json& records = data.at("records");
            for (size_t i = 0; i < page.records.size(); ++i) {
                const json& r = records[i];
                auto own = r.find(id_field);
                const bool has_own = own != r.end() && !own->is_null() &&
                                     !(own->is_string() && own->get_ref<const std::string&>().empty());
                check_long(r, has_own ? id_field.c_str() : "customerId", page.records[i].customer_id, "member");
                if (page.records[i].record != r) finding("member", "record not kept as received");
            }
        });
    }
    // The SAX reader of member pages: when it decodes a body, the DOM path above must decode
    // the very same page from it (code 0, same numbers, same ids in order).
    for (const std::string id_field : {"", "id", "customerId", "memberNo"}) {
        const std::optional<MemberPageReply> fast = read_member_page_fast(body, id_field);
        if (!fast) continue;
        if (env.code != 0) finding("member page sax", "decoded a reply whose code is " + std::to_string(env.code));
        if (fast->msg != env.msg) finding("member page sax", "msg differs");
        try {
            const Page<Member> page =
                parse_page<Member>(data, [&](const json& r) { return parse_member(r, id_field); });
            if (page.current != fast->page.current || page.size != fast->page.size || page.total != fast->page.total)
                finding("member page sax", "current/size/total differ from the DOM path");
            if (page.records.size() != fast->page.records.size()) finding("member page sax", "record count differs");
            for (size_t i = 0; i < page.records.size(); ++i)
                if (page.records[i].customer_id != fast->page.records[i].customer_id)
                    finding("member page sax", "customer id differs from the DOM path");
        } catch (const ParseError& e) {
            finding("member page sax", std::string("decoded a page the DOM path refuses: ") + e.what());
        }
    }
    expect_parse_error_only([&] {
        const std::vector<Folder> folders = decode_list<Folder>(data, parse_folder);
        for (size_t i = 0; i < folders.size(); ++i) check_folder(data[i], folders[i]);
    });
    expect_parse_error_only([&] {
        const std::vector<CustomerGroup> groups = decode_list<CustomerGroup>(data, parse_customer_group);
        for (size_t i = 0; i < groups.size(); ++i) {
            check_long(data[i], "id", groups[i].id, "customer group");
            check_long(data[i], "groupId", groups[i].folder_id, "customer group");
            check_int(data[i], "type", groups[i].type, "customer group");
        }
    });
    return 0;
}
