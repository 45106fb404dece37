// The quirks' plumbing: flags, JSON sections, unknown names refused. Each quirk's behaviour
// is tested where it acts (tests/sim, tests/cdp, tests/sync).
#include <gtest/gtest.h>

#include "sim/quirks.hpp"

namespace cdpsync::sim {
namespace {

TEST(Quirks, OffByDefaultAndEveryKeyRoundTrips) {
    const Quirks q;
    const nlohmann::json j = q.to_json();
    EXPECT_EQ(Quirks::from_json(j).to_json(), j);
}

TEST(Quirks, UnknownSectionsKeysAndBadFlagsAreRefusedByName) {
    Quirks q;
    try {
        q.set_flag("write.no_such_quirk=true");
        FAIL() << "an unknown key was accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("write.no_such_quirk"), std::string::npos) << e.what();
    }
    EXPECT_THROW(q.set_flag("nosection.key=1"), std::invalid_argument);
    EXPECT_THROW(q.set_flag("write"), std::invalid_argument);
    EXPECT_THROW(q.set_flag("novalue"), std::invalid_argument);
    EXPECT_THROW(Quirks::from_json({{"read", 5}}), std::invalid_argument);
}

TEST(Quirks, ReadFlagsSetEachKey) {
    Quirks q;
    q.set_flag("read.newest_first=true");
    q.set_flag("read.churn_adds=3");
    q.set_flag("read.churn_reads=2");
    q.set_flag("read.total_overcount=9");
    q.set_flag("read.customer_id_records=true");
    q.set_flag("read.null_data=true");
    EXPECT_TRUE(q.read.newest_first);
    EXPECT_EQ(q.read.churn_adds, 3);
    EXPECT_EQ(q.read.churn_reads, 2);
    EXPECT_EQ(q.read.total_overcount, 9);
    EXPECT_TRUE(q.read.customer_id_records && q.read.null_data);
    EXPECT_FALSE(ReadQuirks().newest_first);
    EXPECT_EQ(ReadQuirks().churn_adds, 0);
    EXPECT_THROW(q.set_flag("read.churn_adds=\"many\""), std::invalid_argument);
}

}  // namespace
}  // namespace cdpsync::sim
