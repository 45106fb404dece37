// Reply bodies the fuzz target fuzz_cdp_reply (fuzz/, scripts/fuzz.sh) showed mishandled:
// a Long that does not fit was wrapped, truncated or converted with undefined behaviour
// instead of refused, and deep nesting overflowed the stack. Each must now be a ParseError,
// the documented refusal, which the client reports as a malformed reply.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "cdp/models.hpp"

using namespace cdpsync::cdp;

namespace {

std::string repeat(const std::string& s, int n) {
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

// A folder tree `depth` levels deep, as queryTreeFormList would send it.
std::string folder_tree_reply(int depth) {
    return R"({"code":0,"msg":"success","data":)" + repeat(R"([{"id":1,"code":"F","subList":)", depth) + "null" +
           repeat("}]", depth) + "}";
}

constexpr int kDeep = 100000;  // ~2 MB: far below the client's 64 MiB body limit

}  // namespace

TEST(FuzzRegressions, FloatOutsideInt64IsNotALong) {
    // Found by the fuzzer: {"type":-92233720368547758082} reached static_cast<int64_t>(double).
    EXPECT_EQ(as_long(json(-9.2233720368547758082e19)), std::nullopt);
    EXPECT_EQ(as_long(json(1e300)), std::nullopt);
    EXPECT_EQ(as_long(json(9223372036854775808.0)), std::nullopt);  // 2^63
    EXPECT_EQ(as_long(json(-9223372036854775808.0)), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(as_long(json(4096.0)), 4096);
    EXPECT_THROW(parse_group(json::parse(R"({"id":10003,"type":-92233720368547758082})")), ParseError);
    EXPECT_THROW(parse_envelope(R"({"code":1e300})"), ParseError);
}

TEST(FuzzRegressions, UnsignedAboveInt64MaxIsNotALong) {
    EXPECT_EQ(as_long(json(std::numeric_limits<uint64_t>::max())), std::nullopt);
    EXPECT_EQ(as_long(json(uint64_t{9223372036854775808u})), std::nullopt);
    EXPECT_EQ(as_long(json(uint64_t{9223372036854775807u})), std::numeric_limits<int64_t>::max());
    // Was decoded as group id -1.
    EXPECT_THROW(parse_group(json::parse(R"({"id":18446744073709551615})")), ParseError);
    const Envelope env = parse_envelope(R"({"code":0,"data":18446744073709551615})");
    EXPECT_EQ(as_long(env.data), std::nullopt);
}

TEST(FuzzRegressions, CodeOutsideIntRangeIsAParseErrorNotSuccess) {
    // 4294967296 was truncated to code 0: a garbage code read as success.
    EXPECT_THROW(parse_envelope(R"({"code":4294967296,"msg":"x"})"), ParseError);
    EXPECT_THROW(parse_envelope(R"({"code":"-2147483649"})"), ParseError);
    EXPECT_EQ(parse_envelope(R"({"code":2147483647})").code, 2147483647);
    EXPECT_EQ(parse_envelope(R"({"code":"-2147483648"})").code, -2147483648LL);
}

TEST(FuzzRegressions, GroupTypeOutsideIntRangeIsAParseError) {
    // 4294967298 was truncated to 2 and 4294967297 to 1: any number could pass as a static group.
    EXPECT_THROW(parse_group(json::parse(R"({"id":1,"type":4294967297})")), ParseError);
    EXPECT_THROW(parse_customer_group(json::parse(R"({"id":1,"type":"4294967297"})")), ParseError);
    EXPECT_EQ(parse_customer_group(json::parse(R"({"id":1,"type":"2"})")).type, kSmartGroup);
}

TEST(FuzzRegressions, DeepFolderTreeIsAParseErrorNotAStackOverflow) {
    // parse_folder recursed once per subList level: 100000 levels overflowed the stack.
    EXPECT_THROW(parse_envelope(folder_tree_reply(kDeep)), ParseError);
    const json deep = json::parse(repeat(R"({"id":1,"subList":[)", kDeep) + "null" + repeat("]}", kDeep));
    EXPECT_THROW(parse_folder(deep), ParseError);

    // A tree of a depth a real CDP could have still decodes.
    const Envelope env = parse_envelope(folder_tree_reply(100));
    ASSERT_TRUE(env.data.is_array());
    Folder f = parse_folder(env.data[0]);
    int depth = 1;
    for (const Folder* p = &f; !p->children.empty(); p = &p->children[0]) ++depth;
    EXPECT_EQ(depth, 100);
}

TEST(FuzzRegressions, DeepMemberRecordIsAParseErrorNotAStackOverflow) {
    // parse_member copies the record, and json's copy recurses once per level.
    const std::string body = R"({"code":0,"data":{"records":[{"id":1,"x":)" + repeat("[", kDeep) +
                             repeat("]", kDeep) + "}]}}";
    EXPECT_THROW(
        {
            const Envelope env = parse_envelope(body);
            (void)parse_page<Member>(env.data, [](const json& r) { return parse_member(r); });
        },
        ParseError);
}

TEST(FuzzRegressions, BracketsInStringsAreNotNesting) {
    // The depth limit counts structure, not brackets inside strings (escaped quotes included).
    const std::string msg = repeat("[{", 5000) + R"(\"[)";
    const Envelope env = parse_envelope(R"({"code":-1,"msg":")" + msg + R"(","data":[[[1]]]})");
    EXPECT_EQ(env.code, -1);
    EXPECT_EQ(env.msg.size(), 10002u);
    EXPECT_EQ(env.data[0][0][0], 1);
}
