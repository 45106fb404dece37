// The schema-name rule and the one quoting of the name (store/schema.hpp): every piece of
// SQL text naming the cdp_sync schema is built from quote_schema, which refuses any name the
// config would refuse.
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/schema.hpp"

namespace cdpsync::testing {
namespace {

TEST(SchemaName, PlainIdentifierIsQuotedAsItIs) {
    EXPECT_EQ(store::quote_schema("cdp_sync"), "\"cdp_sync\"");
    EXPECT_EQ(store::quote_schema("_s2"), "\"_s2\"");
    EXPECT_EQ(store::quote_schema(std::string(63, 'a')), "\"" + std::string(63, 'a') + "\"");
}

TEST(SchemaName, AnyOtherNameIsRefused) {
    const std::vector<std::string> refused = {"",    "Cdp_Sync", "1sync", "cdp-sync", "a\"b", "cdp; drop table x",
                                              "a.b", std::string(64, 'a')};
    for (const auto& bad : refused) {
        EXPECT_FALSE(store::is_plain_identifier(bad)) << bad;
        EXPECT_THROW(store::quote_schema(bad), std::invalid_argument) << bad;
    }
}

}  // namespace
}  // namespace cdpsync::testing
