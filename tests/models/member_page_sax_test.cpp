// read_member_page_fast (the SAX reader of member pages) against the DOM path it stands in
// for: on a clean success it must decode exactly the page parse_envelope + parse_page +
// parse_member decode; on every other body it must give up (nullopt) so the DOM path decides.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "cdp/models.hpp"

using namespace cdpsync::cdp;

namespace {

struct Decoded {
    int64_t current = 0, size = 0, total = 0;
    std::vector<int64_t> ids;
    std::string msg;
    bool operator==(const Decoded&) const = default;
};

// The DOM path's page, or nullopt when it refuses the body or the code is not 0.
std::optional<Decoded> dom(const std::string& body, const std::string& id_field) {
    try {
        Envelope env = parse_envelope(body);
        if (env.code != 0) return std::nullopt;
        Page<Member> p = parse_page<Member>(env.data, [&](const json& r) { return parse_member(r, id_field); });
        Decoded d{p.current, p.size, p.total, {}, env.msg};
        for (const auto& m : p.records) d.ids.push_back(m.customer_id);
        return d;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::optional<Decoded> fast(const std::string& body, const std::string& id_field) {
    auto r = read_member_page_fast(body, id_field);
    if (!r) return std::nullopt;
    Decoded d{r->page.current, r->page.size, r->page.total, {}, r->msg};
    for (const auto& m : r->page.records) {
        EXPECT_TRUE(m.record.is_null()) << "the fast path keeps no record";
        d.ids.push_back(m.customer_id);
    }
    return d;
}

const std::vector<std::string> kIdFields{"", "customerId", "id", "cid"};

// Either the fast path gives up, or it agrees with the DOM path.
void expect_agrees(const std::string& body) {
    for (const auto& field : kIdFields) {
        auto f = fast(body, field);
        if (!f) continue;
        auto d = dom(body, field);
        ASSERT_TRUE(d) << "fast path accepted what the DOM path refuses (field '" << field << "'): " << body;
        EXPECT_EQ(*f, *d) << "field '" << field << "': " << body;
    }
}

}  // namespace

TEST(MemberPageSax, DecodesATypicalPageLikeTheDomPath) {
    const std::string body = R"({"code":0,"msg":"success","data":{"current":2,"size":3,"total":7,"pages":3,
        "records":[{"id":90001,"customerId":11,"name":"甲","tags":[{"k":"v"}],"extra":{"a":[1,2,{"b":null}]}},
                   {"id":90002,"customerId":"12","mobile":null},
                   {"id":13}]},"traceId":"x"})";
    auto f = fast(body, "");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->ids, (std::vector<int64_t>{11, 12, 13}));
    EXPECT_EQ(f->current, 2);
    EXPECT_EQ(f->size, 3);
    EXPECT_EQ(f->total, 7);
    EXPECT_EQ(f->msg, "success");
    EXPECT_EQ(*f, *dom(body, ""));
    EXPECT_EQ(fast(body, "id")->ids, (std::vector<int64_t>{90001, 90002, 13}));
}

TEST(MemberPageSax, NullDataAndNullRecordsAreAnEmptyPageAsInTheDomPath) {
    for (const std::string body : {R"({"code":0,"msg":"ok","data":null})", R"({"code":0})",
                                   R"({"code":0,"data":{"total":0,"records":null}})",
                                   R"({"code":0,"data":{"current":"","size":"10","total":"0","records":[]}})"}) {
        auto f = fast(body, "");
        ASSERT_TRUE(f) << body;
        EXPECT_TRUE(f->ids.empty()) << body;
        EXPECT_EQ(*f, *dom(body, "")) << body;
    }
    EXPECT_EQ(fast(R"({"code":0,"data":null})", "")->current, 0);  // "the reply does not say which page"
}

TEST(MemberPageSax, CustomerIdBesideAnUnrelatedIdPicksCustomerIdUnlessItIsNull) {
    const std::string body = R"({"code":0,"data":{"records":[{"id":1,"customerId":null},{"customerId":5,"id":"x"}]}})";
    auto f = fast(body, "");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->ids, (std::vector<int64_t>{1, 5}));
    EXPECT_EQ(*f, *dom(body, ""));
}

TEST(MemberPageSax, GivesUpOnEveryReplyTheDomPathDecidesOtherwise) {
    const std::vector<std::string> odd{
        "",
        "<html>502</html>",
        R"({"code":0,"data":{"records":[{"customerId":1}]})",           // cut short
        R"([{"code":0}])",                                              // not an object
        R"({"msg":"ok","data":null})",                                  // no code
        R"({"code":-1,"msg":"系统繁忙"})",                              // code != 0: the caller classifies
        R"({"code":"0","data":null})",                                  // code as a string (DOM accepts)
        R"({"code":0,"code":1})",                                       // repeated key: DOM keeps the last
        R"({"code":0,"data":{"records":[{"customerId":1,"customerId":2}]}})",
        R"({"code":0,"data":{"records":[{"customerId":""}]}})",        // empty customerId is no id
        R"({"code":0,"data":{"records":[{"name":"no id"}]}})",
        R"({"code":0,"data":{"records":[7]}})",
        R"({"code":0,"data":{"records":{}}})",
        R"({"code":0,"data":[]})",
        R"({"code":0,"data":{"total":"abc"}})",
        R"({"code":0,"data":{"total":1.5}})",
        R"({"code":0,"data":{"records":[{"customerId":1.0}]}})",        // float id (DOM accepts 1.0)
        R"({"code":0,"data":{"records":[{"customerId":18446744073709551615}]}})",
        R"({"code":0,"msg":{"text":"ok"}})",
        R"({"code":0,"msg":5})",
        R"({"code":0} trailing)",
    };
    for (const auto& body : odd) {
        EXPECT_FALSE(read_member_page_fast(body, "")) << body;
        expect_agrees(body);
    }
}

TEST(MemberPageSax, NestingDeeperThanTheDomLimitIsLeftToTheDomPath) {
    std::string deep = R"({"code":0,"data":{"records":[{"customerId":1,"x":)";
    for (int i = 0; i < 300; ++i) deep += "[";
    for (int i = 0; i < 300; ++i) deep += "]";
    deep += "}]}}";
    EXPECT_FALSE(read_member_page_fast(deep, ""));
    EXPECT_THROW(parse_envelope(deep), ParseError);
}

TEST(MemberPageSax, ConfiguredFieldIsReadAlone) {
    const std::string body = R"({"code":0,"data":{"records":[{"cid":"11","id":999},{"cid":12,"customerId":5}]}})";
    auto f = fast(body, "cid");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->ids, (std::vector<int64_t>{11, 12}));
    EXPECT_FALSE(read_member_page_fast(body, "memberNo"));  // the DOM path names the missing field
    expect_agrees(body);
}
