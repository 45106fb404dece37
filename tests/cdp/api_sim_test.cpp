// Request shape of every endpoint (method, path, query, headers, body) and the decoding of
// the simulator's replies, over real loopback HTTP.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "api_test_util.hpp"
#include "sim/server.hpp"

namespace cdpsync::cdp {
namespace {

using test::Harness;
using test::fast_options;

std::string url_decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else if (s[i] == '+') {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

struct Target {
    std::string path;
    std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
};

Target split_target(const std::string& target) {
    Target t;
    const auto q = target.find('?');
    t.path = target.substr(0, q);
    if (q == std::string::npos) return t;
    std::string rest = target.substr(q + 1);
    size_t pos = 0;
    while (pos <= rest.size()) {
        auto amp = rest.find('&', pos);
        if (amp == std::string::npos) amp = rest.size();
        const std::string kv = rest.substr(pos, amp - pos);
        const auto eq = kv.find('=');
        t.query.emplace_back(url_decode(kv.substr(0, eq)), eq == std::string::npos ? "" : url_decode(kv.substr(eq + 1)));
        pos = amp + 1;
    }
    return t;
}

std::optional<std::string> header(const sim::CapturedRequest& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
        if (k.size() == name.size() &&
            std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
            return v;
    }
    return std::nullopt;
}

using Query = std::vector<std::pair<std::string, std::string>>;

class ApiSim : public ::testing::Test {
protected:
    ApiSim() : server(options()), h((server.start(), fast_options(server.base_url())), "sim-token") {}

    static sim::ServerOptions options() {
        sim::ServerOptions o;
        o.request_capture = 100;
        return o;
    }

    sim::CapturedRequest last() {
        auto all = server.captured_requests();
        if (all.empty()) throw std::runtime_error("no request captured");
        return all.back();
    }

    // Method, path (under /openapi), query and the standard headers of the last request.
    void expect_last(const std::string& method, const std::string& path, const Query& query) {
        const auto r = last();
        EXPECT_EQ(r.method, method);
        const Target t = split_target(r.target);
        EXPECT_EQ(t.path, "/openapi" + path);
        EXPECT_EQ(t.query, query);
        EXPECT_EQ(header(r, "token").value_or("<none>"), "sim-token");
        EXPECT_EQ(header(r, "Content-Type").value_or("<none>"), "application/json");
    }

    json last_body() { return json::parse(last().body); }

    sim::Server server;
    Harness h;
};

TEST_F(ApiSim, CreateGroupPostsAStaticGroupAndReturnsItsId) {
    const int64_t folder = server.state().add_folder("Marketing");
    auto r = h.run(h.api.create_group({"VIP 客户", "big spenders", folder}));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("POST", path::add_group, {});
    EXPECT_EQ(last_body(), (json{{"name", "VIP 客户"}, {"description", "big spenders"}, {"groupId", folder}, {"type", 1}}));
    auto g = server.state().group(r.value());
    ASSERT_TRUE(g);
    EXPECT_EQ(g->name, "VIP 客户");
    EXPECT_EQ(g->folder_id, folder);
}

TEST_F(ApiSim, DeleteGroupIsAGetWithTheGroupIdInTheQuery) {
    const int64_t id = server.state().add_group("old");
    auto r = h.run(h.api.delete_group(id));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("GET", path::delete_group, {{"customerGroupId", std::to_string(id)}});
    EXPECT_EQ(last().body, "");
    EXPECT_FALSE(server.state().group(id));
}

TEST_F(ApiSim, UpdateGroupSendsOnlyTheFieldsGiven) {
    const int64_t id = server.state().add_group("before", "desc");
    UpdateGroup u;
    u.id = id;
    u.name = "after";
    auto r = h.run(h.api.update_group(u));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("POST", path::update_group, {});
    EXPECT_EQ(last_body(), (json{{"customerGroupId", id}, {"name", "after"}, {"type", 1}}));
    EXPECT_EQ(server.state().group(id)->name, "after");
    EXPECT_EQ(server.state().group(id)->description, "desc");
}

TEST_F(ApiSim, QueryGroupsSendsSearchFolderAndPageAndDecodesThePage) {
    const int64_t folder = server.state().add_folder("F");
    const int64_t a = server.state().add_group("会员A", "a", folder);
    server.state().add_group("会员B", "b");  // other folder
    server.state().add_membership(7, a);
    auto r = h.run(h.api.query_groups({"会员", folder, 1, 10}));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("GET", path::simple_query,
                {{"searchKey", "会员"}, {"groupId", std::to_string(folder)}, {"current", "1"}, {"size", "10"}});
    ASSERT_EQ(r.value().records.size(), 1u);
    EXPECT_EQ(r.value().total, 1);
    EXPECT_EQ(r.value().records[0].id, a);
    EXPECT_EQ(r.value().records[0].name, "会员A");
    EXPECT_EQ(r.value().records[0].folder_id, folder);
    EXPECT_EQ(r.value().records[0].customer_total, 1);
}

TEST_F(ApiSim, QueryGroupsWithoutFiltersSendsOnlyThePage) {
    auto r = h.run(h.api.query_groups({"", std::nullopt, 3, 25}));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("GET", path::simple_query, {{"current", "3"}, {"size", "25"}});
}

TEST_F(ApiSim, AddFolderPostsBusinessTypeNameAndParent) {
    const int64_t parent = server.state().add_folder("parent");
    const std::string parent_code = server.state().folder(parent)->code;
    auto r = h.run(h.api.add_folder("child", parent_code));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("POST", path::folder_add, {});
    EXPECT_EQ(last_body(), (json{{"businessType", "customer_group"}, {"name", "child"}, {"parentCode", parent_code}}));
    EXPECT_EQ(server.state().folder(r.value())->parent_code, parent_code);
}

TEST_F(ApiSim, AddRootFolderOmitsParentCode) {
    auto r = h.run(h.api.add_folder("root"));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(last_body(), (json{{"businessType", "customer_group"}, {"name", "root"}}));
}

TEST_F(ApiSim, DeleteFolderSendsCustomerGroupBusinessType) {
    const int64_t id = server.state().add_folder("gone");
    auto r = h.run(h.api.delete_folder(id));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("POST", path::folder_delete, {});
    EXPECT_EQ(last_body(), (json{{"businessType", "customer_group"}, {"commonGroupId", id}}));
    EXPECT_FALSE(server.state().folder(id));
}

TEST_F(ApiSim, UpdateFolderSendsIdAndName) {
    const int64_t id = server.state().add_folder("old");
    auto r = h.run(h.api.update_folder(id, "new"));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("POST", path::folder_update, {});
    EXPECT_EQ(last_body(), (json{{"businessType", "customer_group"}, {"commonGroupId", id}, {"name", "new"}}));
    EXPECT_EQ(server.state().folder(id)->name, "new");
}

TEST_F(ApiSim, FolderTreeQueriesWithBusinessTypeAndDecodesChildren) {
    const int64_t top = server.state().add_folder("top");
    const int64_t sub = server.state().add_folder("sub", server.state().folder(top)->code);
    auto r = h.run(h.api.folder_tree());
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("GET", path::folder_tree, {{"businessType", "customer_group"}});
    ASSERT_EQ(r.value().size(), 1u);
    EXPECT_EQ((r.value())[0].id, top);
    ASSERT_EQ((r.value())[0].children.size(), 1u);
    EXPECT_EQ((r.value())[0].children[0].id, sub);
    EXPECT_EQ((r.value())[0].children[0].name, "sub");
}

TEST_F(ApiSim, CustomerAddDeleteAndUpdateGroupsSendCustomerAndGroupList) {
    const int64_t g1 = server.state().add_group("g1");
    const int64_t g2 = server.state().add_group("g2");
    const int64_t g3 = server.state().add_group("g3");
    server.state().ensure_customer(42);

    auto add = h.run(h.api.customer_add_groups({42, {g1, g2}}));
    ASSERT_TRUE(add.has_value()) << add.error().describe();
    expect_last("POST", path::customer_add_groups, {});
    EXPECT_EQ(last_body(), (json{{"customerId", 42}, {"customerGroupIdList", {g1, g2}}}));
    EXPECT_TRUE(server.state().is_member(42, g1));

    auto del = h.run(h.api.customer_delete_groups({42, {g1}}));
    ASSERT_TRUE(del.has_value()) << del.error().describe();
    expect_last("POST", path::customer_delete_groups, {});
    EXPECT_EQ(last_body(), (json{{"customerId", 42}, {"customerGroupIdList", {g1}}}));
    EXPECT_FALSE(server.state().is_member(42, g1));

    auto set = h.run(h.api.customer_update_groups({42, {g3}}));
    ASSERT_TRUE(set.has_value()) << set.error().describe();
    expect_last("POST", path::customer_update_groups, {});
    EXPECT_EQ(last_body(), (json{{"customerId", 42}, {"customerGroupIdList", {g3}}}));
    EXPECT_EQ(server.state().groups_of(42), (std::vector<int64_t>{g3}));
}

TEST_F(ApiSim, MembersPageSendsGroupAndPageAndReadsCustomerIds) {
    const int64_t g = server.state().add_group("g");
    for (int64_t c = 100; c < 107; ++c) server.state().add_membership(c, g);
    auto r = h.run(h.api.members_page(g, 2, 3));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("GET", path::members_page,
                {{"customerGroupId", std::to_string(g)}, {"current", "2"}, {"size", "3"}});
    EXPECT_EQ(r.value().total, 7);
    std::vector<int64_t> ids;
    for (const auto& m : r.value().records) ids.push_back(m.customer_id);
    EXPECT_EQ(ids, (std::vector<int64_t>{103, 104, 105}));
    EXPECT_TRUE(r.value().records[0].record.is_object());
}

TEST_F(ApiSim, GroupsOfCustomerSendsCustomerAndType) {
    const int64_t st = server.state().add_group("static");
    const int64_t sm = server.state().add_group("smart", "", std::nullopt, kSmartGroup);
    server.state().add_membership(9, st);
    server.state().add_membership(9, sm);
    auto r = h.run(h.api.groups_of_customer(9, kSmartGroup));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    expect_last("GET", path::groups_by_customer, {{"customerId", "9"}, {"type", "2"}});
    ASSERT_EQ(r.value().size(), 1u);
    EXPECT_EQ((r.value())[0].id, sm);
    EXPECT_EQ((r.value())[0].type, kSmartGroup);

    auto s = h.run(h.api.groups_of_customer(9));
    ASSERT_TRUE(s.has_value()) << s.error().describe();
    expect_last("GET", path::groups_by_customer, {{"customerId", "9"}, {"type", "1"}});
    ASSERT_EQ(s.value().size(), 1u);
    EXPECT_EQ((s.value())[0].id, st);
}

TEST_F(ApiSim, ARefusedCallIsACdpCodeErrorWithTheServersMessage) {
    auto r = h.run(h.api.delete_folder(987654));  // no such folder
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::cdp_code);
    EXPECT_EQ(r.error().cdp_code, -1);
    EXPECT_EQ(r.error().http_status, 200u);
    EXPECT_EQ(r.error().endpoint, path::folder_delete);
    EXPECT_FALSE(r.error().msg.empty());
    EXPECT_EQ(r.error().attempts, 1);
    EXPECT_EQ(h.api.stats().failures, 1u);
}

// A CDP (or gateway) putting an HTTP status in the body of an HTTP 200: retried like the
// HTTP 429 / 503 it stands for.
TEST_F(ApiSim, Code429Or503InA200BodyIsRetriedLikeItsHttpTwin) {
    const int64_t g = server.state().add_group("g");
    server.state().ensure_customer(42);
    for (int code : {429, 503}) {
        sim::Quirks q;
        q.write.outage_writes = 1;
        q.write.outage_code = code;
        q.write.outage_msg = "Too Many Requests";
        server.state().set_quirks(q);
        const auto before = h.api.stats();
        auto r = h.run(h.api.customer_add_groups({42, {g}}));
        ASSERT_TRUE(r.has_value()) << r.error().describe();
        EXPECT_EQ(h.api.stats().retries - before.retries, 1u) << code;
    }
    EXPECT_TRUE(server.state().is_member(42, g));
    CallError e;
    e.kind = CallError::Kind::cdp_code;
    e.http_status = 200;
    e.cdp_code = 429;
    EXPECT_TRUE(e.transient());
    e.cdp_code = 400;
    EXPECT_FALSE(e.transient());
}

TEST(RefusalMessages, KnownPermanentAndMissingGroupAreTold) {
    EXPECT_TRUE(is_unknown_customer_msg("客户不存在"));
    EXPECT_FALSE(is_unknown_customer_msg("群组不存在"));
    EXPECT_TRUE(is_unknown_group_msg("群组不存在"));
    EXPECT_TRUE(is_smart_group_msg("智能群组不能手动添加客户"));
    EXPECT_FALSE(is_unknown_customer_msg("服务异常"));
    EXPECT_FALSE(is_unknown_group_msg("客户已在该群组中"));
}

TEST_F(ApiSim, QueryAllGroupsCollectsEveryPage) {
    for (int i = 0; i < 47; ++i) server.state().add_group("g" + std::to_string(i));
    auto r = h.run(h.api.query_all_groups());
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(r.value().size(), 47u);
    EXPECT_EQ(h.api.stats().calls, 5u);  // 10 a page
}

TEST_F(ApiSim, MemberPagerCopesWithTheServersPageCap) {
    sim::ServerOptions o;
    o.max_page_size = 4;  // smaller than the 10 asked
    sim::Server capped(o);
    capped.start();
    Harness hc(fast_options(capped.base_url()), "sim-token");
    const int64_t g = capped.state().add_group("g");
    for (int64_t c = 1; c <= 23; ++c) capped.state().add_membership(c, g);
    std::vector<int64_t> ids;
    std::vector<int64_t> pages;
    auto r = hc.run(hc.api.for_each_member_page(g, [&](int64_t n, Page<Member>&& p) {
        pages.push_back(n);
        for (const auto& m : p.records) ids.push_back(m.customer_id);
    }));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    std::vector<int64_t> want(23);
    for (int i = 0; i < 23; ++i) want[i] = i + 1;
    EXPECT_EQ(ids, want);
    EXPECT_EQ(pages, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

}  // namespace
}  // namespace cdpsync::cdp
