// The groups phase against the CDP's undocumented group behaviours (issues 10 and 11):
// creates answered late with duplicate names allowed, namesakes, groups deleted by hand,
// groups of unknown type, folder paths. Real PostgreSQL and the in-process simulator.
#include <algorithm>

#include "faults/fault_ledger.hpp"
#include "sync/folders.hpp"
#include "sync/sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

using Rows = std::vector<std::pair<int64_t, std::string>>;

class GroupsTest : public SyncTest {
protected:
    void set_group_quirks(const nlohmann::json& groups) {
        server->state().set_quirks(sim::Quirks::from_json({{"groups", groups}}, server->state().quirks()));
    }
    std::optional<int64_t> mapped_id(const std::string& name) {
        store::Session session(cfg.database.dsn, cfg.database.schema);
        auto m = session.groups.group_map();
        auto it = m.find(name);
        if (it == m.end() || !it->second.group_id) return std::nullopt;
        return it->second.group_id;
    }
    std::set<int64_t> members(int64_t group_id) {
        auto v = server->state().members_of(group_id);
        return {v.begin(), v.end()};
    }
    static std::set<int64_t> range(int64_t first, int64_t n) {
        std::set<int64_t> out;
        for (int64_t c = first; c < first + n; ++c) out.insert(c);
        return out;
    }
    int64_t writes_naming(int64_t group_id) {
        int64_t n = 0;
        for (const auto& e : server->state().write_log())
            if (std::count(e.group_ids.begin(), e.group_ids.end(), group_id)) ++n;
        return n;
    }
    std::vector<cdp::Folder> folders_named(const std::string& name) {
        std::vector<cdp::Folder> out;
        auto walk = [&](auto&& self, const std::vector<cdp::Folder>& level) -> void {
            for (const auto& f : level) {
                if (f.name == name) out.push_back(f);
                self(self, f.children);
            }
        };
        walk(walk, server->state().folder_tree());
        return out;
    }
    void desire_groups(const std::vector<std::pair<std::string, std::string>>& name_folder) {
        cfg.database.desired_groups = "SELECT name, description, folder FROM " + src + ".g";
        exec("TRUNCATE " + src + ".g");
        for (const auto& [name, folder] : name_folder)
            exec("INSERT INTO " + src + ".g VALUES ('" + name + "', NULL, '" + folder + "')");
    }
};

TEST(FolderPath, LevelsAreTrimmedLikeEveryOtherTextAndEmptyOnesDropped) {
    EXPECT_EQ(sync::split_folder_path("A / B/"), (std::vector<std::string>{"A", "B"}));
    EXPECT_EQ(sync::split_folder_path("\tSales\r\n/ VIP  /"), (std::vector<std::string>{"Sales", "VIP"}));
    EXPECT_EQ(sync::split_folder_path("a b/ /c"), (std::vector<std::string>{"a b", "c"}));
    EXPECT_TRUE(sync::split_folder_path(" / ").empty());
    EXPECT_TRUE(sync::split_folder_path("").empty());
}

TEST_F(GroupsTest, LateCreateWithDuplicateNamesAllowedMakesOneGroupAndAStableMapping) {
    // Every create (group and folder) is applied, then answered after the client gave up.
    set_group_quirks({{"duplicate_names", true}, {"create_reply_delay_ms", 1200}});
    cfg.cdp.timeout_ms = 300;
    cfg.cdp.folder = "Late/Deeper";
    Rows rows;
    add_range(rows, 1, 30, "late");
    desire(rows);

    auto first = resync();
    EXPECT_EQ(first.status, sync::RunStatus::succeeded) << first.to_text();
    EXPECT_EQ(server->state().find_groups_by_name("late").size(), 1u);
    EXPECT_EQ(folders_named("Late").size(), 1u);
    EXPECT_EQ(folders_named("Deeper").size(), 1u);
    const auto id = mapped_id("late");
    ASSERT_TRUE(id);
    EXPECT_EQ(server->state().group(*id)->folder_id, folders_named("Deeper").front().id);

    auto second = resync();
    EXPECT_EQ(second.status, sync::RunStatus::succeeded) << second.to_text();
    EXPECT_EQ(mapped_id("late"), id);
    EXPECT_EQ(server->state().find_groups_by_name("late").size(), 1u);
    faults::Ledger ledger(cfg.cdp.timeout_ms);
    faults::check_end_state(ledger, server->state().write_log(), server->state(), rows);
}

TEST_F(GroupsTest, NamesakesPickTheOneWithMembersThenTheLowestIdAndAMappingNeverSwitches) {
    auto& st = server->state();
    const int64_t empty_low = st.add_group("crowd");
    const int64_t with_members = st.add_group("crowd");
    st.add_membership(1500, with_members);
    const int64_t pair_low = st.add_group("pair");
    const int64_t pair_high = st.add_group("pair");
    Rows rows;
    add_range(rows, 1, 10, "crowd");
    add_range(rows, 20, 5, "pair");
    desire(rows);

    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(mapped_id("crowd"), with_members);
    EXPECT_EQ(mapped_id("pair"), pair_low);
    EXPECT_EQ(members(with_members), range(1, 10));  // 1500 removed: the database does not want it
    EXPECT_EQ(members(pair_low), range(20, 5));
    EXPECT_TRUE(members(empty_low).empty());
    EXPECT_TRUE(members(pair_high).empty());

    // The namesake now has members, and the mapped group fewer: the mapping stays.
    st.add_membership(1600, pair_high);
    st.add_membership(1601, pair_high);
    r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(mapped_id("pair"), pair_low);
    EXPECT_EQ(members(pair_low), range(20, 5));
    EXPECT_EQ(members(pair_high), (std::set<int64_t>{1600, 1601}));  // not ours: untouched
    EXPECT_EQ(writes_naming(pair_high), 0);
    EXPECT_EQ(writes_naming(empty_low), 0);
}

TEST_F(GroupsTest, GroupDeletedByHandIsRecreatedAndRefilledByOneFullResync) {
    Rows rows;
    add_range(rows, 1, 40, "gone");
    add_range(rows, 100, 5, "stays");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    const auto old_id = mapped_id("gone");
    ASSERT_TRUE(old_id);
    ASSERT_TRUE(server->state().delete_group(*old_id).ok());

    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    const auto new_id = mapped_id("gone");
    ASSERT_TRUE(new_id);
    EXPECT_NE(*new_id, *old_id);
    EXPECT_EQ(members(*new_id), range(1, 40));
    EXPECT_EQ(server->state().find_groups_by_name("gone").size(), 1u);
    faults::Ledger ledger(cfg.cdp.timeout_ms);
    faults::check_end_state(ledger, server->state().write_log(), server->state(), rows);
}

TEST_F(GroupsTest, RecheckFlagConfirmsTheGroupInAnIncrementalCycle) {
    Rows rows;
    add_range(rows, 1, 25, "flagged");
    add_range(rows, 50, 5, "kept");
    desire(rows);
    ASSERT_EQ(resync().status, sync::RunStatus::succeeded);
    const auto gone_id = mapped_id("flagged");
    const auto kept_id = mapped_id("kept");
    ASSERT_TRUE(gone_id && kept_id);

    // "kept" still exists: the flag is cleared, nothing is created.
    { store::Session(cfg.database.dsn, cfg.database.schema).groups.flag_group_recheck(*kept_id); }
    // "flagged" was deleted by hand; the write side flagged it after a refusal.
    ASSERT_TRUE(server->state().delete_group(*gone_id).ok());
    { store::Session(cfg.database.dsn, cfg.database.schema).groups.flag_group_recheck(*gone_id); }

    auto r = once();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(mapped_id("kept"), kept_id);
    {
        store::Session session(cfg.database.dsn, cfg.database.schema);
        auto m = session.groups.group_map();
        EXPECT_FALSE(m.at("kept").recheck);
        EXPECT_FALSE(m.at("flagged").recheck);
    }
    const auto new_id = mapped_id("flagged");
    ASSERT_TRUE(new_id);
    EXPECT_NE(*new_id, *gone_id);
    EXPECT_EQ(members(*new_id), range(1, 25));
    EXPECT_EQ(server->state().find_groups_by_name("flagged").size(), 1u);
    EXPECT_EQ(server->state().find_groups_by_name("kept").size(), 1u);
}

TEST_F(GroupsTest, GroupWithMissingOrUnknownTypeIsNeverWrittenAndTheReasonIsReported) {
    auto& st = server->state();
    const int64_t untyped = st.add_group("untyped");
    const int64_t odd = st.add_group("oddtype");
    st.add_membership(1700, untyped);
    st.add_membership(1700, odd);
    set_group_quirks({{"missing_type", {"untyped"}}, {"unknown_type", {"oddtype"}}});
    Rows rows;
    add_range(rows, 1, 5, "untyped");
    add_range(rows, 1, 5, "oddtype");
    add_range(rows, 1, 5, "fine");
    desire(rows);

    for (int pass = 0; pass < 2; ++pass) {  // the full resync, then an incremental cycle
        auto r = pass == 0 ? resync() : once();
        EXPECT_EQ(r.status, sync::RunStatus::failed) << r.to_text();
        std::set<std::string> refused;
        for (const auto& e : r.group_errors)
            if (e.error.find("missing or unknown type") != std::string::npos) refused.insert(e.name);
        EXPECT_EQ(refused, (std::set<std::string>{"untyped", "oddtype"})) << r.to_text();
    }
    EXPECT_EQ(writes_naming(untyped), 0);
    EXPECT_EQ(writes_naming(odd), 0);
    int64_t creates = 0;  // "fine" only: neither refused group is created over
    for (const auto& e : st.write_log()) creates += e.endpoint == "customer-group/addSingleGroup";
    EXPECT_EQ(creates, 1);
    EXPECT_EQ(members(untyped), (std::set<int64_t>{1700}));
    EXPECT_EQ(members(odd), (std::set<int64_t>{1700}));
    EXPECT_EQ(st.find_groups_by_name("untyped").size(), 1u);
    EXPECT_EQ(st.find_groups_by_name("oddtype").size(), 1u);
    ASSERT_TRUE(group_id("fine"));
    EXPECT_EQ(members(*group_id("fine")), range(1, 5));
}

TEST_F(GroupsTest, NestedFolderPathsTellSameNamedFoldersApartAndAFolderChangeMovesTheGroup) {
    auto& st = server->state();
    // Sales/VIP exists; Marketing/VIP does not.
    const int64_t sales = st.add_folder("Sales");
    const int64_t sales_vip = st.add_folder("VIP", st.folder(sales)->code);
    desire_groups({{"a", "Marketing/VIP"}, {"b", " Sales / VIP "}});
    Rows rows;
    add_range(rows, 1, 5, "a");
    add_range(rows, 10, 5, "b");
    desire(rows);

    auto p = plan(false);
    EXPECT_EQ(p.folders_to_create, (std::vector<std::string>{"Marketing", "Marketing/VIP"})) << p.to_text();
    EXPECT_EQ(p.groups_to_create, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(st.write_log().empty());

    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    ASSERT_EQ(folders_named("Marketing").size(), 1u);
    auto vips = folders_named("VIP");
    ASSERT_EQ(vips.size(), 2u);
    const auto marketing_vip = std::find_if(vips.begin(), vips.end(), [&](const cdp::Folder& f) {
        return f.parent_code == folders_named("Marketing").front().code;
    });
    ASSERT_NE(marketing_vip, vips.end());
    EXPECT_EQ(st.group(*group_id("a"))->folder_id, marketing_vip->id);
    EXPECT_EQ(st.group(*group_id("b"))->folder_id, sales_vip);

    // "a" moves to Sales/VIP: the plan says so, the run does it with one updateCustomerGroup.
    desire_groups({{"a", "Sales/VIP"}, {"b", "Sales/VIP"}});
    p = plan(false);
    EXPECT_EQ(p.groups_to_move, (std::vector<std::string>{"a -> Sales/VIP"})) << p.to_text();
    EXPECT_TRUE(p.folders_to_create.empty());
    st.clear_write_log();
    r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    EXPECT_EQ(st.group(*group_id("a"))->folder_id, sales_vip);
    int64_t updates = 0;
    for (const auto& e : st.write_log()) updates += e.endpoint == "customer-group/updateCustomerGroup";
    EXPECT_EQ(updates, 1);
    EXPECT_EQ(folders_named("VIP").size(), 2u);
    expect_converged(rows);
}

// Groups are resolved several at a time (cdp.max_in_flight); a new folder they share is
// still created once, and each group lands in it.
TEST_F(GroupsTest, GroupsResolvedAtOnceUnderOneNewFolderCreateItOnce) {
    auto& st = server->state();
    desire_groups({{"g1", "Shared/New"}, {"g2", "Shared/New"}, {"g3", "Shared/New"}, {"g4", "Shared/New"}});
    Rows rows;
    add_range(rows, 1, 3, "g1");
    add_range(rows, 10, 3, "g2");
    add_range(rows, 20, 3, "g3");
    add_range(rows, 30, 3, "g4");
    desire(rows);

    auto r = resync();
    EXPECT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    ASSERT_EQ(folders_named("Shared").size(), 1u);
    ASSERT_EQ(folders_named("New").size(), 1u);
    const int64_t folder = folders_named("New").front().id;
    for (const char* g : {"g1", "g2", "g3", "g4"}) {
        ASSERT_TRUE(group_id(g).has_value()) << g;
        EXPECT_EQ(st.group(*group_id(g))->folder_id, folder) << g;
    }
    expect_converged(rows);
}

// An incremental run looks up each name it has no trusted mapping for. Four such names cost
// one listing instead of four searches; the groups it created need no drift check.
TEST_F(GroupsTest, NewNamesOfAnIncrementalRunAreFoundInOneListingWhenThatIsCheaper) {
    const int64_t old = server->state().add_group("old", "", std::nullopt, cdp::kStaticGroup);
    Rows rows;
    for (const char* g : {"a", "b", "c", "old"}) add_range(rows, 1, 3, g);
    desire(rows);
    auto r = once();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    EXPECT_EQ(endpoint_calls("customer-group/simpleQuery"), 1);  // four lookups and a drift listing before
    EXPECT_EQ(endpoint_calls("customer-group/addSingleGroup"), 3);
    EXPECT_EQ(mapped_id("old"), old) << "the listed namesake is used, not a new one";
    EXPECT_EQ(server->state().find_groups_by_name("old").size(), 1u);
}

// When the first page's total says the listing takes more calls than the names to look up,
// the run stops listing after that page and searches each name.
TEST_F(GroupsTest, AListingLongerThanTheLookupsIsLeftForOneSearchPerName) {
    for (int i = 1; i <= 9; ++i)
        server->state().add_group("other-" + std::to_string(i), "", std::nullopt, cdp::kStaticGroup);
    cfg.cdp.page_size = 2;  // 9 groups: a listing of 5 pages, more than the 2 names to look up
    Rows rows;
    add_range(rows, 1, 3, "new-a");
    add_range(rows, 1, 3, "new-b");
    desire(rows);
    auto r = once();
    ASSERT_EQ(r.status, sync::RunStatus::succeeded) << r.to_text();
    expect_converged(rows);
    EXPECT_EQ(endpoint_calls("customer-group/simpleQuery"), 1 + 2);  // the first page, then a search each
    EXPECT_EQ(endpoint_calls("customer-group/addSingleGroup"), 2);
}

// Quirk groups.unlisted: a listing leaves a group out but counts it in its total (as when a
// group moves onto a page already read). A name missing from such a listing is searched
// before it is created, in a full run and in an incremental one alike.
TEST_F(GroupsTest, ANameMissingFromAListingThatCameUpShortIsSearchedBeforeItIsCreated) {
    const int64_t hidden = server->state().add_group("hidden", "", std::nullopt, cdp::kStaticGroup);
    const int64_t later = server->state().add_group("later", "", std::nullopt, cdp::kStaticGroup);
    set_group_quirks({{"unlisted", {"hidden", "later"}}});
    Rows rows;
    add_range(rows, 1, 3, "hidden");
    add_range(rows, 1, 3, "fresh");
    desire(rows);
    auto full = resync();
    ASSERT_EQ(full.status, sync::RunStatus::succeeded) << full.to_text();
    EXPECT_EQ(mapped_id("hidden"), hidden);
    EXPECT_EQ(server->state().find_groups_by_name("hidden").size(), 1u);

    add_range(rows, 1, 3, "later");   // two names to look up: one listing, short of its total
    add_range(rows, 1, 3, "fresh-2");
    desire(rows);
    server->reset_stats();
    auto incremental = once();
    ASSERT_EQ(incremental.status, sync::RunStatus::succeeded) << incremental.to_text();
    expect_converged(rows);
    EXPECT_EQ(mapped_id("later"), later);
    EXPECT_EQ(server->state().find_groups_by_name("later").size(), 1u);
    EXPECT_EQ(endpoint_calls("customer-group/addSingleGroup"), 1);  // fresh-2 only
}

}  // namespace
}  // namespace cdpsync::testing
