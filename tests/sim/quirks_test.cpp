// The quirks' plumbing: flags, JSON sections, unknown names refused. Each quirk's behaviour
// is tested where it acts (tests/sim, tests/cdp, tests/sync).
#include <gtest/gtest.h>

#include "sim/quirks.hpp"
#include "sim/state.hpp"

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

TEST(WriteQuirks, FlagsSetEveryKey) {
    Quirks q;
    q.set_flag("write.refuse_already_applied=true");
    q.set_flag("write.max_groups_per_call=2");
    q.set_flag("write.outage_writes=3");
    q.set_flag("write.outage_code=503");
    q.set_flag("write.outage_msg=维护中");
    EXPECT_TRUE(q.write.refuse_already_applied);
    EXPECT_EQ(q.write.max_groups_per_call, 2);
    EXPECT_EQ(q.write.outage_writes, 3);
    EXPECT_EQ(q.write.outage_code, 503);
    EXPECT_EQ(q.write.outage_msg, "维护中");
    EXPECT_EQ(Quirks::from_json(q.to_json()).to_json(), q.to_json());
    EXPECT_THROW(q.set_flag("write.max_groups_per_call=\"two\""), std::invalid_argument);
}

TEST(WriteQuirks, RefusalsCapAndOutageWindowAct) {
    State st;
    const int64_t a = st.add_group("a"), b = st.add_group("b"), c = st.add_group("c");
    st.ensure_customer(1);
    Quirks q;
    q.write.refuse_already_applied = true;
    q.write.max_groups_per_call = 2;
    q.write.outage_writes = 2;
    st.set_quirks(q);
    EXPECT_FALSE(st.customer_add_groups(1, {a, b, c}).ok());  // over the cap
    EXPECT_FALSE(st.is_member(1, a));
    ASSERT_TRUE(st.customer_add_groups(1, {a, b}).ok());
    EXPECT_EQ(st.customer_add_groups(1, {a}).error, "客户已在该群组中");
    EXPECT_EQ(st.customer_delete_groups(1, {c}).error, "客户不在该群组中");
    EXPECT_FALSE(st.customer_update_groups(1, {a, b, c}).ok());
    // The outage window: two writes, then over.
    for (int i = 0; i < 2; ++i) {
        auto o = st.take_write_outage();
        ASSERT_TRUE(o);
        EXPECT_EQ(o->code, -1);
    }
    EXPECT_FALSE(st.take_write_outage());
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
