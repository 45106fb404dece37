// Tolerant parsing of CDP replies: what the models accept, and what they refuse clearly.
#include <gtest/gtest.h>

#include "cdp/models.hpp"

using namespace cdpsync::cdp;

TEST(Envelope, ParsesCodeMsgAndData) {
    auto env = parse_envelope(R"({"code":0,"msg":"ok","data":123,"extra":true})");
    EXPECT_EQ(env.code, 0);
    EXPECT_EQ(env.msg, "ok");
    EXPECT_EQ(env.data, 123);
}

TEST(Envelope, CodeAsStringIsAccepted) {
    auto env = parse_envelope(R"({"code":"-1","msg":"系统繁忙"})");
    EXPECT_EQ(env.code, -1);
    EXPECT_EQ(env.msg, "系统繁忙");
    EXPECT_TRUE(env.data.is_null());
}

TEST(Envelope, NonJsonIsAParseErrorNamingTheProblem) {
    try {
        parse_envelope("<html>502 Bad Gateway</html>");
        FAIL() << "expected ParseError";
    } catch (const ParseError& e) {
        EXPECT_NE(std::string(e.what()).find("not JSON"), std::string::npos) << e.what();
    }
}

TEST(Envelope, TruncatedBodyIsAParseError) {
    EXPECT_THROW(parse_envelope(R"({"code":0,"msg":"ok","data":{"rec)"), ParseError);
}

TEST(Envelope, MissingCodeIsAParseError) {
    try {
        parse_envelope(R"({"msg":"ok"})");
        FAIL() << "expected ParseError";
    } catch (const ParseError& e) {
        EXPECT_NE(std::string(e.what()).find("code"), std::string::npos);
    }
}

TEST(Envelope, NonObjectAndWrongCodeTypeAreParseErrors) {
    EXPECT_THROW(parse_envelope("[1,2]"), ParseError);
    EXPECT_THROW(parse_envelope(R"({"code":{"x":1}})"), ParseError);
    EXPECT_THROW(parse_envelope(R"({"code":"zero"})"), ParseError);
}

TEST(Longs, NumberOrNumericStringButNothingElse) {
    json j = {{"a", 9007199254740993LL}, {"b", "9007199254740993"}, {"c", "12x"},
              {"d", nullptr}, {"e", true}, {"f", ""}};
    EXPECT_EQ(get_long(j, "a"), 9007199254740993LL);
    EXPECT_EQ(get_long(j, "b"), 9007199254740993LL);
    EXPECT_THROW(get_long(j, "c"), ParseError);
    EXPECT_EQ(get_long(j, "d"), std::nullopt);
    EXPECT_THROW(get_long(j, "e"), ParseError);
    EXPECT_EQ(get_long(j, "f"), std::nullopt);
    EXPECT_EQ(get_long(j, "missing"), std::nullopt);
}

TEST(Group, TolerantParse) {
    auto g = parse_group(json::parse(
        R"({"id":"42","name":"VIP","groupId":"7","type":1,"customerTotal":"3","unknown":[1]})"));
    EXPECT_EQ(g.id, 42);
    EXPECT_EQ(g.name, "VIP");
    EXPECT_EQ(g.folder_id, 7);
    EXPECT_EQ(g.customer_total, 3);
    EXPECT_EQ(g.description, "");  // missing optional field defaulted
}

TEST(Group, MissingTypeIsUnknownNotStatic) {
    // A group whose type is not known is never written (DESIGN.md): no default to static.
    EXPECT_EQ(parse_group(json::parse(R"({"id":1,"name":"x"})")).type, kUnknownGroupType);
    EXPECT_EQ(parse_group(json::parse(R"({"id":1,"name":"x","type":null})")).type, kUnknownGroupType);
    EXPECT_EQ(parse_group(json::parse(R"({"id":1,"name":"x","type":"1"})")).type, kStaticGroup);
}

TEST(Group, MissingIdOrWrongTypeIsRefused) {
    EXPECT_THROW(parse_group(json::parse(R"({"name":"x"})")), ParseError);
    EXPECT_THROW(parse_group(json::parse(R"({"id":1,"name":{"zh":"x"}})")), ParseError);
    EXPECT_THROW(parse_group(json::parse(R"("id")")), ParseError);
}

TEST(Group, RoundTripsThroughJson) {
    Group g{5, "名称", "desc", 9, kSmartGroup, 100};
    auto back = parse_group(to_json(g));
    EXPECT_EQ(back.id, 5);
    EXPECT_EQ(back.name, "名称");
    EXPECT_EQ(back.folder_id, 9);
    EXPECT_EQ(back.type, kSmartGroup);
    EXPECT_EQ(back.customer_total, 100);
}

TEST(Folder, TreeWithStringNameAndSubLists) {
    auto f = parse_folder(json::parse(
        R"({"id":1,"code":"A","name":"root","parentCode":null,
            "subList":[{"id":"2","code":"A1","name":123,"parentCode":"A"}]})"));
    ASSERT_EQ(f.children.size(), 1u);
    EXPECT_EQ(f.children[0].id, 2);
    EXPECT_EQ(f.children[0].name, "123");  // documented as int, decided as string
    EXPECT_EQ(f.children[0].parent_code, "A");
    EXPECT_THROW(parse_folder(json::parse(R"({"id":1,"subList":{}})")), ParseError);
}

TEST(Member, AutoReadsCustomerIdWhenPresentElseId) {
    EXPECT_EQ(parse_member(json::parse(R"({"id":"77","email":"a@b"})")).customer_id, 77);
    EXPECT_EQ(parse_member(json::parse(R"({"customerId":78})")).customer_id, 78);
    // Both present: `id` is the membership row's own id, not the customer's.
    EXPECT_EQ(parse_member(json::parse(R"({"id":5000001,"customerId":"79"})")).customer_id, 79);
    EXPECT_EQ(member_id_field(json::parse(R"({"id":1,"customerId":2})"), ""), "customerId");
    EXPECT_EQ(member_id_field(json::parse(R"({"id":1,"customerId":null})"), ""), "id");
    EXPECT_THROW(parse_member(json::parse(R"({"email":"a@b"})")), ParseError);
}

TEST(Member, ConfiguredFieldOverridesAndIsReadAlone) {
    EXPECT_EQ(parse_member(json::parse(R"({"cid":79,"customerId":1})"), "cid").customer_id, 79);
    EXPECT_EQ(parse_member(json::parse(R"({"id":5000001,"customerId":79})"), "id").customer_id, 5000001);
    try {
        (void)parse_member(json::parse(R"({"customerId":78})"), "cid");
        FAIL() << "a record without the configured field must not parse";
    } catch (const ParseError& e) {
        EXPECT_NE(std::string(e.what()).find("'cid'"), std::string::npos) << e.what();
    }
}

TEST(Page, ShortAndMissingRecords) {
    auto page = parse_page<Member>(json::parse(R"({"current":"2","size":10,"total":"11","records":[{"id":5}]})"),
                                   [](const json& r) { return parse_member(r); });
    EXPECT_EQ(page.current, 2);
    EXPECT_EQ(page.total, 11);
    ASSERT_EQ(page.records.size(), 1u);
    auto empty = parse_page<Member>(json::parse(R"({"total":0})"), [](const json& r) { return parse_member(r); });
    EXPECT_TRUE(empty.records.empty());
    EXPECT_THROW(parse_page<Member>(json::parse(R"({"records":{}})"), [](const json& r) { return parse_member(r); }),
                 ParseError);
    EXPECT_THROW(parse_page<Member>(json::parse("[]"), [](const json& r) { return parse_member(r); }), ParseError);
    EXPECT_EQ(parse_page<Member>(json::parse(R"({"records":[]})"), [](const json& r) { return parse_member(r); }).current, 0)
        << "a reply that does not say its page is not taken for page 1";
}

TEST(Page, NullDataIsAnEmptyPageWithTotalZero) {
    auto page = parse_page<Member>(json(nullptr), [](const json& r) { return parse_member(r); });
    EXPECT_TRUE(page.records.empty());
    EXPECT_EQ(page.total, 0);
    auto groups = parse_page<Group>(json(nullptr), parse_group);
    EXPECT_TRUE(groups.records.empty());
    EXPECT_EQ(groups.total, 0);
    auto nulls = parse_page<Group>(json::parse(R"({"current":1,"size":10,"total":null,"records":null})"), parse_group);
    EXPECT_TRUE(nulls.records.empty());
    EXPECT_EQ(nulls.total, 0);
    EXPECT_TRUE(decode_list<CustomerGroup>(json(nullptr), parse_customer_group).empty());
}

TEST(Requests, BodiesUseTheApiFieldNames) {
    EXPECT_EQ(to_json(MembershipChange{12, {1, 2}}),
              json::parse(R"({"customerId":12,"customerGroupIdList":[1,2]})"));
    EXPECT_EQ(to_json(CreateGroup{"n", "", std::nullopt}), json::parse(R"({"name":"n","type":1})"));
    EXPECT_EQ(to_json(CreateGroup{"n", "d", 3}),
              json::parse(R"({"name":"n","type":1,"description":"d","groupId":3})"));
    UpdateGroup u;
    u.id = 4;
    u.description = "x";
    EXPECT_EQ(to_json(u), json::parse(R"({"customerGroupId":4,"type":1,"description":"x"})"));
}
