// The simulator's State: the CDP's rules applied directly, without HTTP.
#include <algorithm>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "sim/state.hpp"

namespace cdpsync::sim {
namespace {

TEST(SimState, FoldersGetCodesAndFormATree) {
    State s;
    const int64_t root = s.add_folder("root");
    const std::string root_code = s.folder(root)->code;
    EXPECT_EQ(root_code, "F0001");
    auto child = s.create_folder("child", root_code);
    ASSERT_TRUE(child.ok()) << child.error;
    EXPECT_EQ(s.folder(child.value)->parent_code, root_code);

    auto tree = s.folder_tree();
    ASSERT_EQ(tree.size(), 1u);
    EXPECT_EQ(tree[0].id, root);
    ASSERT_EQ(tree[0].children.size(), 1u);
    EXPECT_EQ(tree[0].children[0].id, child.value);
    EXPECT_EQ(tree[0].children[0].name, "child");
}

TEST(SimState, FolderWithUnknownParentIsRefused) {
    State s;
    EXPECT_FALSE(s.create_folder("x", "F9999").ok());
    EXPECT_THROW(s.add_folder("x", "F9999"), std::invalid_argument);
}

TEST(SimState, OnlyStaticGroupsCanBeCreatedAndNamesAreUnique) {
    State s;
    auto smart = s.create_group("smart", "", std::nullopt, cdp::kSmartGroup);
    EXPECT_FALSE(smart.ok());
    EXPECT_EQ(smart.error, "仅支持创建静态群组");
    auto a = s.create_group("a", "desc", std::nullopt, cdp::kStaticGroup);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(s.group(a.value)->description, "desc");
    EXPECT_FALSE(s.create_group("a", "", std::nullopt, cdp::kStaticGroup).ok());
    EXPECT_FALSE(s.create_group("b", "", 12345, cdp::kStaticGroup).ok()) << "unknown folder";
    // Seeding bypasses the rules: smart groups and duplicate names are allowed.
    s.add_group("a");
    s.add_group("s", "", std::nullopt, cdp::kSmartGroup);
    EXPECT_EQ(s.find_groups_by_name("a").size(), 2u);
}

TEST(SimState, UpdateGroupChecksTypeAndFolder) {
    State s;
    const int64_t f = s.add_folder("f");
    const int64_t g = s.add_group("g");
    EXPECT_EQ(s.update_group(g, "h", std::nullopt, std::nullopt, cdp::kSmartGroup).error, "群组类型不匹配");
    EXPECT_FALSE(s.update_group(g, std::nullopt, std::nullopt, 999, cdp::kStaticGroup).ok());
    EXPECT_FALSE(s.update_group(777, "x", std::nullopt, std::nullopt, cdp::kStaticGroup).ok());
    ASSERT_TRUE(s.update_group(g, "h", "d", f, cdp::kStaticGroup).ok());
    auto got = s.group(g);
    EXPECT_EQ(got->name, "h");
    EXPECT_EQ(got->description, "d");
    EXPECT_EQ(got->folder_id, f);
}

TEST(SimState, AddingToAnUnknownCustomerIsRefused) {
    State s;
    const int64_t g = s.add_group("g");
    auto r = s.customer_add_groups(42, {g});
    EXPECT_EQ(r.error, "客户不存在");
    s.ensure_customer(42);
    EXPECT_TRUE(s.customer_add_groups(42, {g}).ok());
    EXPECT_EQ(s.members_of(g), std::vector<int64_t>{42});
}

TEST(SimState, SmartGroupsRefuseManualAddAndDelete) {
    State s;
    const int64_t smart = s.add_group("s", "", std::nullopt, cdp::kSmartGroup);
    const int64_t stat = s.add_group("t");
    s.add_membership(1, smart);  // seeding may fill smart groups
    EXPECT_FALSE(s.customer_add_groups(1, {stat, smart}).ok());
    EXPECT_TRUE(s.members_of(stat).empty()) << "a refused call changes nothing";
    EXPECT_FALSE(s.customer_delete_groups(1, {smart}).ok());
    EXPECT_TRUE(s.is_member(1, smart));
    EXPECT_FALSE(s.customer_update_groups(1, {smart}).ok());
}

TEST(SimState, UnknownGroupIdIsRefusedAtomically) {
    State s;
    const int64_t g = s.add_group("g");
    s.ensure_customer(1);
    EXPECT_EQ(s.customer_add_groups(1, {g, 99999}).error, "群组不存在");
    EXPECT_FALSE(s.is_member(1, g));
    EXPECT_EQ(s.customer_delete_groups(1, {99999}).error, "群组不存在");
}

TEST(SimState, AddAndDeleteAreIdempotent) {
    State s;
    const int64_t g = s.add_group("g");
    s.ensure_customer(1);
    ASSERT_TRUE(s.customer_add_groups(1, {g, g}).ok());
    ASSERT_TRUE(s.customer_add_groups(1, {g}).ok());
    EXPECT_EQ(s.membership_count(), 1);
    ASSERT_TRUE(s.customer_delete_groups(1, {g}).ok());
    ASSERT_TRUE(s.customer_delete_groups(1, {g}).ok());
    EXPECT_EQ(s.membership_count(), 0);
    EXPECT_EQ(s.group(g)->customer_total, 0);
}

TEST(SimState, UpdateGroupsReplacesStaticGroupsAndKeepsSmartOnes) {
    State s;
    const int64_t a = s.add_group("a"), b = s.add_group("b"), c = s.add_group("c");
    const int64_t smart = s.add_group("s", "", std::nullopt, cdp::kSmartGroup);
    s.add_membership(7, a);
    s.add_membership(7, b);
    s.add_membership(7, smart);
    ASSERT_TRUE(s.customer_update_groups(7, {b, c}).ok());
    EXPECT_EQ(s.groups_of(7, cdp::kStaticGroup), (std::vector<int64_t>{b, c}));
    EXPECT_EQ(s.groups_of(7, cdp::kSmartGroup), std::vector<int64_t>{smart});
    ASSERT_TRUE(s.customer_update_groups(7, {}).ok());
    EXPECT_TRUE(s.groups_of(7, cdp::kStaticGroup).empty());
    EXPECT_EQ(s.membership_count(), 1);
}

TEST(SimState, DeletingAGroupRemovesItsMemberships) {
    State s;
    const int64_t a = s.add_group("a"), b = s.add_group("b");
    for (int64_t c = 1; c <= 10; ++c) {
        s.add_membership(c, a);
        if (c % 2) s.add_membership(c, b);
    }
    EXPECT_EQ(s.membership_count(), 15);
    ASSERT_TRUE(s.delete_group(a).ok());
    EXPECT_FALSE(s.group(a));
    EXPECT_EQ(s.membership_count(), 5);
    EXPECT_EQ(s.groups_of(2), std::vector<int64_t>{});
    EXPECT_EQ(s.groups_of(3), std::vector<int64_t>{b});
    EXPECT_TRUE(s.has_customer(2)) << "customers outlive their groups";
    EXPECT_FALSE(s.delete_group(a).ok());
}

TEST(SimState, FolderHoldingCustomersCannotBeDeleted) {
    State s;
    const int64_t top = s.add_folder("top");
    const int64_t sub = s.add_folder("sub", s.folder(top)->code);
    const int64_t g = s.add_group("g", "", sub);
    const int64_t empty = s.add_group("e", "", top);
    s.add_membership(1, g);
    EXPECT_EQ(s.delete_folder(top).error, "分组中含有客户，不能删除");
    EXPECT_FALSE(s.delete_folder(sub).ok());
    s.remove_membership(1, g);
    ASSERT_TRUE(s.delete_folder(top).ok());
    EXPECT_FALSE(s.folder(top));
    EXPECT_FALSE(s.folder(sub)) << "sub-folders go with their parent";
    EXPECT_EQ(s.group(g)->folder_id, std::nullopt);
    EXPECT_EQ(s.group(empty)->folder_id, std::nullopt);
    EXPECT_FALSE(s.delete_folder(top).ok());
}

TEST(SimState, QueryGroupsFiltersByNameAndFolderAndPages) {
    State s;
    const int64_t f = s.add_folder("f");
    for (int i = 0; i < 5; ++i) s.add_group("vip-" + std::to_string(i), "", f);
    s.add_group("other");
    auto p = s.query_groups("vip", std::nullopt, 2, 2);
    EXPECT_EQ(p.total, 5);
    ASSERT_EQ(p.records.size(), 2u);
    EXPECT_EQ(p.records[0].name, "vip-2");
    EXPECT_EQ(s.query_groups("", f, 1, 10).total, 5);
    EXPECT_EQ(s.query_groups("", std::nullopt, 1, 10).total, 6);
    EXPECT_TRUE(s.query_groups("", std::nullopt, 99, 10).records.empty());
    EXPECT_TRUE(s.query_groups("", std::nullopt, INT64_MAX, INT64_MAX / 2).records.empty());
}

TEST(SimState, MembersPageEdges) {
    State s;
    const int64_t g = s.add_group("g");
    for (int64_t c = 1; c <= 5; ++c) s.add_membership(c * 10, g);
    auto p1 = s.members_page(g, 1, 2);
    ASSERT_TRUE(p1.ok());
    EXPECT_EQ(p1.value.records, (std::vector<int64_t>{10, 20}));
    EXPECT_EQ(p1.value.total, 5);
    EXPECT_EQ(s.members_page(g, 3, 2).value.records, std::vector<int64_t>{50});
    EXPECT_TRUE(s.members_page(g, 4, 2).value.records.empty());
    EXPECT_EQ(s.members_page(g, 4, 2).value.total, 5);
    EXPECT_EQ(s.members_page(g, 1, 5).value.records.size(), 5u);
    EXPECT_FALSE(s.members_page(4242, 1, 2).ok());
}

// The lazy merge of pending adds and removes must always equal a plain set.
TEST(SimState, MembershipMatchesAReferenceSetUnderRandomChanges) {
    State s;
    const int64_t g = s.add_group("g");
    std::set<int64_t> ref;
    std::mt19937_64 rng(7);
    std::vector<std::pair<int64_t, int64_t>> bulk;
    for (int64_t c = 0; c < 20000; c += 2) bulk.emplace_back(c, g);
    s.add_memberships(bulk);
    for (const auto& [c, gid] : bulk) ref.insert(c);
    for (int round = 0; round < 60000; ++round) {
        const int64_t c = static_cast<int64_t>(rng() % 30000);
        if (rng() % 2) {
            EXPECT_EQ(s.add_membership(c, g), ref.insert(c).second);
        } else {
            EXPECT_EQ(s.remove_membership(c, g), ref.erase(c) == 1);
        }
        if (round % 9973 == 0) {
            auto got = s.members_of(g);
            ASSERT_EQ(got, std::vector<int64_t>(ref.begin(), ref.end())) << "round " << round;
        }
    }
    auto got = s.members_of(g);
    EXPECT_EQ(got, std::vector<int64_t>(ref.begin(), ref.end()));
    EXPECT_EQ(s.group(g)->customer_total, static_cast<int64_t>(ref.size()));
    EXPECT_EQ(s.membership_count(), static_cast<int64_t>(ref.size()));
}

TEST(SimState, BulkMembershipsSkipDuplicatesAndUnknownGroupsThrow) {
    State s;
    const int64_t g = s.add_group("g");
    EXPECT_EQ(s.add_memberships({{3, g}, {1, g}, {3, g}, {2, g}}), 3);
    EXPECT_EQ(s.add_memberships({{1, g}, {0, g}}), 1);
    EXPECT_EQ(s.members_of(g), (std::vector<int64_t>{0, 1, 2, 3}));
    EXPECT_THROW(s.add_memberships({{1, 999}}), std::invalid_argument);
}

TEST(SimState, GenerateSpreadsMembershipsEvenly) {
    State s;
    GenerateSpec spec;
    spec.first_customer_id = 1000;
    spec.customers = 1000;
    spec.groups = 10;
    spec.smart_groups = 2;
    spec.memberships = 3500;
    auto r = s.generate(spec);
    ASSERT_EQ(r.group_ids.size(), 10u);
    EXPECT_EQ(s.membership_count(), 3500);
    EXPECT_EQ(s.customer_count(), 1000);
    EXPECT_EQ(s.group(r.group_ids[0])->type, cdp::kSmartGroup);
    EXPECT_EQ(s.group(r.group_ids[2])->type, cdp::kStaticGroup);
    int64_t sum = 0;
    for (int64_t gid : r.group_ids) {
        auto members = s.members_of(gid);
        EXPECT_TRUE(std::is_sorted(members.begin(), members.end()));
        EXPECT_EQ(static_cast<int64_t>(members.size()), s.group(gid)->customer_total);
        sum += static_cast<int64_t>(members.size());
    }
    EXPECT_EQ(sum, 3500);
    EXPECT_EQ(s.groups_of(1000).size(), 4u);  // 3500 / 1000 = 3, the first 500 get one more
    EXPECT_EQ(s.groups_of(1999).size(), 3u);
    // The same seed gives the same state.
    State t;
    auto r2 = t.generate(spec);
    EXPECT_EQ(t.members_of(r2.group_ids[3]), s.members_of(r.group_ids[3]));
    EXPECT_THROW(s.generate(GenerateSpec{1, 2, 1, 0, 3, 1, "x", std::nullopt}), std::invalid_argument);
}

TEST(SimState, CustomerGroupsByType) {
    State s;
    const int64_t f = s.add_folder("f");
    const int64_t a = s.add_group("a", "", f);
    const int64_t smart = s.add_group("s", "", std::nullopt, cdp::kSmartGroup);
    s.add_membership(5, a);
    s.add_membership(5, smart);
    auto st = s.customer_groups(5, cdp::kStaticGroup);
    ASSERT_TRUE(st.ok());
    ASSERT_EQ(st.value.size(), 1u);
    EXPECT_EQ(st.value[0].id, a);
    EXPECT_EQ(st.value[0].folder_id, f);
    EXPECT_EQ(st.value[0].code, s.folder(f)->code);
    EXPECT_EQ(s.customer_groups(5, cdp::kSmartGroup).value.at(0).id, smart);
    EXPECT_EQ(s.customer_groups(6, cdp::kStaticGroup).error, "客户不存在");
    EXPECT_FALSE(s.customer_groups(5, 3).ok());
}

TEST(SimState, DumpAndResetAndWriteLog) {
    State s;
    const int64_t g = s.add_group("g");
    s.add_membership(1, g);
    s.log_write({"customer-group-ref/customerAddGroups", 1, {g}, std::chrono::system_clock::now(), 0, "", "", 0});
    auto j = s.dump();
    EXPECT_EQ(j["memberships"], 1);
    EXPECT_EQ(j["groups"][0]["members"], json::array({1}));
    EXPECT_EQ(j["groups"][0]["customerTotal"], 1);
    EXPECT_FALSE(s.dump(false)["groups"][0].contains("members"));
    ASSERT_EQ(s.write_log().size(), 1u);
    EXPECT_EQ(to_json(s.write_log()[0])["groupIds"], json::array({g}));
    s.clear_write_log();
    EXPECT_TRUE(s.write_log().empty());
    s.reset();
    EXPECT_EQ(s.group_count(), 0);
    EXPECT_EQ(s.membership_count(), 0);
    EXPECT_EQ(s.add_group("again"), g) << "ids start over after reset";
}

TEST(SimState, CustomerRecordsArePlausibleAndStable) {
    json a = customer_record(123456789);
    EXPECT_EQ(a["id"], 123456789);
    EXPECT_EQ(a, customer_record(123456789));
    EXPECT_TRUE(a["gender"].get<int>() >= 0 && a["gender"].get<int>() <= 2);
    EXPECT_EQ(a["email"], "user123456789@example.com");
    EXPECT_EQ(a["birthday"].get<std::string>().size(), 10u);
    EXPECT_NE(a["openId"], customer_record(2)["openId"]);
}

}  // namespace
}  // namespace cdpsync::sim
