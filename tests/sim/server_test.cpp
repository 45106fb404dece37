// The simulator over real loopback HTTP: every endpoint, the rules, paging, the token, the
// rate limit, every fault kind, the admin API and TLS.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "sim/server.hpp"
#include "sim_client.hpp"
#include "support/child_process.hpp"
#include "support/tls_certs.hpp"

namespace cdpsync::sim {
namespace {

using test::Client;
using test::Response;
namespace fs = std::filesystem;

std::string enc(const std::string& s) {  // percent-encodes every non-alphanumeric byte
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c)) out += static_cast<char>(c);
        else out += {'%', hex[c >> 4], hex[c & 15]};
    }
    return out;
}

class SimHttp : public ::testing::Test {
protected:
    void SetUp() override { start({}); }
    void start(ServerOptions o) {
        client.reset();
        server.reset();
        server = std::make_unique<Server>(std::move(o));
        server->start();
        client = std::make_unique<Client>(server->port());
    }
    State& st() { return server->state(); }
    json stats() { return client->get("/__sim/stats").json(); }
    int64_t endpoint_count(const std::string& ep, const std::string& outcome) {
        return server->stats()["endpoints"][ep].value(outcome, int64_t{0});
    }

    std::unique_ptr<Server> server;
    std::unique_ptr<Client> client;
};

// ---------------------------------------------------------------- the 13 endpoints

TEST_F(SimHttp, AddSingleGroupCreatesAStaticGroup) {
    const int64_t folder = st().add_folder("f");
    json r = client->cdp_post("/customer-group/addSingleGroup",
                              {{"name", "VIP"}, {"description", "d"}, {"groupId", std::to_string(folder)}, {"type", 1}});
    ASSERT_EQ(r["code"], 0) << r;
    const int64_t id = r["data"].get<int64_t>();
    auto g = st().group(id);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->name, "VIP");
    EXPECT_EQ(g->folder_id, folder);
    EXPECT_EQ(g->type, cdp::kStaticGroup);

    EXPECT_EQ(client->cdp_post("/customer-group/addSingleGroup", {{"name", "S"}, {"type", 2}})["msg"], "仅支持创建静态群组");
    EXPECT_EQ(client->cdp_post("/customer-group/addSingleGroup", {{"type", 1}})["msg"], "参数name不能为空");
    EXPECT_EQ(client->cdp_post("/customer-group/addSingleGroup", {{"name", "X"}})["msg"], "参数type不能为空");
    EXPECT_EQ(client->cdp_post("/customer-group/addSingleGroup", {{"name", "X"}, {"type", "one"}})["code"], -1);
    EXPECT_EQ(client->cdp_post("/customer-group/addSingleGroup", {{"name", 5}, {"type", 1}})["msg"], "参数name类型错误");
    EXPECT_EQ(client->cdp_post("/customer-group/addSingleGroup", {{"name", "VIP"}, {"type", 1}})["msg"], "群组名称已存在");
    EXPECT_EQ(st().group_count(), 1);
}

TEST_F(SimHttp, DeleteCustomerGroupRemovesItsMemberships) {
    const int64_t g = st().add_group("g");
    const int64_t keep = st().add_group("keep");
    st().add_memberships({{1, g}, {2, g}, {1, keep}});
    json r = client->cdp_get("/customer-group/deleteCustomerGroup?customerGroupId=" + std::to_string(g));
    ASSERT_EQ(r["code"], 0) << r;
    EXPECT_EQ(r["data"], nullptr);
    EXPECT_FALSE(st().group(g));
    EXPECT_EQ(st().membership_count(), 1);
    EXPECT_EQ(st().groups_of(1), std::vector<int64_t>{keep});
    EXPECT_EQ(client->cdp_get("/customer-group/deleteCustomerGroup?customerGroupId=" + std::to_string(g))["msg"], "群组不存在");
    EXPECT_EQ(client->cdp_get("/customer-group/deleteCustomerGroup")["msg"], "参数customerGroupId不能为空");
    EXPECT_EQ(client->cdp_get("/customer-group/deleteCustomerGroup?customerGroupId=abc")["msg"], "参数customerGroupId类型错误");
}

TEST_F(SimHttp, UpdateCustomerGroupRenamesAndMoves) {
    const int64_t f = st().add_folder("f");
    const int64_t g = st().add_group("g");
    json r = client->cdp_post("/customer-group/updateCustomerGroup",
                              {{"customerGroupId", g}, {"name", "h"}, {"description", "new"}, {"groupId", f}, {"type", 1}});
    ASSERT_EQ(r["code"], 0) << r;
    EXPECT_EQ(st().group(g)->name, "h");
    EXPECT_EQ(st().group(g)->description, "new");
    EXPECT_EQ(st().group(g)->folder_id, f);
    EXPECT_EQ(client->cdp_post("/customer-group/updateCustomerGroup", {{"customerGroupId", g}, {"name", "z"}})["msg"], "参数type不能为空");
    EXPECT_EQ(client->cdp_post("/customer-group/updateCustomerGroup", {{"customerGroupId", 1}, {"type", 1}})["msg"], "群组不存在");
    EXPECT_EQ(st().group(g)->name, "h");
}

TEST_F(SimHttp, SimpleQuerySearchesByNameAndFolderWithLiveTotals) {
    const int64_t f = st().add_folder("f");
    const int64_t vip = st().add_group("会员VIP", "", f);
    st().add_group("会员普通", "", f);
    st().add_group("other");
    st().add_customers(1, 3);
    json r = client->cdp_get("/customer-group/simpleQuery?current=1&size=10&searchKey=" + enc("VIP"));
    ASSERT_EQ(r["code"], 0) << r;
    ASSERT_EQ(r["data"]["total"], 1);
    EXPECT_EQ(r["data"]["records"][0]["id"], vip);
    EXPECT_EQ(r["data"]["records"][0]["customerTotal"], 0);
    EXPECT_EQ(r["data"]["records"][0]["groupId"], f);

    client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 2}, {"customerGroupIdList", {vip}}});
    r = client->cdp_get("/customer-group/simpleQuery?current=1&size=10&searchKey=" + enc("会员") +
                        "&groupId=" + std::to_string(f));
    EXPECT_EQ(r["data"]["total"], 2);
    EXPECT_EQ(r["data"]["records"][0]["customerTotal"], 1) << "customerTotal is live";
    EXPECT_EQ(client->cdp_get("/customer-group/simpleQuery?current=1&size=10")["data"]["total"], 3);
    EXPECT_EQ(client->cdp_get("/customer-group/simpleQuery?size=10")["msg"], "参数current不能为空");
}

TEST_F(SimHttp, GetCustomerPageByGroupIdPagesMembersWithRecords) {
    const int64_t g = st().add_group("g");
    for (int64_t c = 1; c <= 25; ++c) st().add_membership(c * 100, g);
    std::vector<int64_t> seen;
    for (int page = 1; page <= 3; ++page) {
        json r = client->cdp_get("/customer-group/getCustomerPageByGroupId?customerGroupId=" + std::to_string(g) +
                                 "&current=" + std::to_string(page) + "&size=10");
        ASSERT_EQ(r["code"], 0) << r;
        EXPECT_EQ(r["data"]["total"], 25);
        EXPECT_EQ(r["data"]["current"], page);
        for (const auto& rec : r["data"]["records"]) {
            seen.push_back(rec["id"].get<int64_t>());
            EXPECT_TRUE(rec.contains("email") && rec.contains("gender") && rec.contains("nickName"));
            EXPECT_EQ(rec, customer_record(rec["id"].get<int64_t>()));
        }
    }
    ASSERT_EQ(seen.size(), 25u);
    EXPECT_EQ(seen.front(), 100);
    EXPECT_EQ(seen.back(), 2500);
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
    EXPECT_EQ(client->cdp_get("/customer-group/getCustomerPageByGroupId?customerGroupId=9&current=1&size=10")["msg"], "群组不存在");
}

TEST_F(SimHttp, ReadQuirksShapeMemberPagesAndEmptyLists) {
    const int64_t g = st().add_group("g");
    const int64_t empty = st().add_group("empty");
    for (int64_t c = 1; c <= 25; ++c) st().add_membership(c, g);
    Quirks q;
    q.read.newest_first = true;
    q.read.total_overcount = 4;
    q.read.customer_id_records = true;
    q.read.null_data = true;
    q.read.churn_adds = 2;
    q.read.churn_removes = 1;
    q.read.churn_reads = 1;
    st().set_quirks(q);
    auto page = [&](int64_t group, int current) {
        return client->cdp_get("/customer-group/getCustomerPageByGroupId?customerGroupId=" + std::to_string(group) +
                               "&current=" + std::to_string(current) + "&size=10");
    };
    json r = page(g, 1);  // churn first: customer 1 removed, two new customers added (newest)
    ASSERT_EQ(r["code"], 0) << r;
    EXPECT_EQ(r["data"]["total"], 25 - 1 + 2 + 4);
    const auto& first = r["data"]["records"][0];
    EXPECT_GE(first["customerId"].get<int64_t>(), 8'000'000'000'000) << "newest first";
    EXPECT_EQ(first["id"], internal_member_row_id(first["customerId"].get<int64_t>()));
    EXPECT_EQ(r["data"]["records"][2]["customerId"], 25);
    json again = page(g, 1);  // the churn budget (1 read) is spent
    EXPECT_EQ(again["data"]["total"], 26 + 4);
    EXPECT_EQ(st().members_of(g).size(), 26u);

    EXPECT_TRUE(page(empty, 1)["data"].is_null());
    EXPECT_TRUE(client->cdp_get("/customer-group/simpleQuery?searchKey=nothing&current=1&size=10")["data"].is_null());
    st().ensure_customer(77);
    EXPECT_TRUE(client->cdp_get("/customer-group-ref/getGroupsByCustomerId?customerId=77&type=1")["data"].is_null());
}

TEST_F(SimHttp, FolderEndpointsAddUpdateTreeDelete) {
    json r = client->cdp_post("/group/add", {{"businessType", "customer_group"}, {"name", "top"}});
    ASSERT_EQ(r["code"], 0) << r;
    const int64_t top = r["data"];
    const std::string code = st().folder(top)->code;
    r = client->cdp_post("/group/add", {{"businessType", "customer_group"}, {"name", "sub"}, {"parentCode", code}});
    ASSERT_EQ(r["code"], 0) << r;
    const int64_t sub = r["data"];
    EXPECT_EQ(client->cdp_post("/group/add", {{"name", "x"}})["msg"], "参数businessType不能为空");
    EXPECT_EQ(client->cdp_post("/group/add", {{"businessType", "customer_group"}, {"name", "x"}, {"parentCode", "NOPE"}})["msg"], "上级分组不存在");

    r = client->cdp_post("/group/update", {{"businessType", "customer_group"}, {"commonGroupId", sub}, {"name", "renamed"}});
    ASSERT_EQ(r["code"], 0) << r;

    r = client->cdp_get("/group/queryTreeFormList?businessType=customer_group");
    ASSERT_EQ(r["code"], 0) << r;
    ASSERT_EQ(r["data"].size(), 1u);
    EXPECT_EQ(r["data"][0]["id"], top);
    EXPECT_EQ(r["data"][0]["code"], code);
    EXPECT_EQ(r["data"][0]["subList"][0]["name"], "renamed");
    EXPECT_EQ(r["data"][0]["subList"][0]["parentCode"], code);
    EXPECT_EQ(client->cdp_get("/group/queryTreeFormList")["code"], -1);

    // A folder whose groups hold customers stays; an empty one goes (customer_label accepted).
    const int64_t g = st().add_group("g", "", sub);
    st().add_membership(1, g);
    r = client->cdp_post("/group/delete", {{"businessType", "customer_label"}, {"commonGroupId", top}});
    EXPECT_EQ(r["msg"], "分组中含有客户，不能删除");
    EXPECT_TRUE(st().folder(top));
    st().remove_membership(1, g);
    r = client->cdp_post("/group/delete", {{"businessType", "customer_label"}, {"commonGroupId", top}});
    ASSERT_EQ(r["code"], 0) << r;
    EXPECT_FALSE(st().folder(top));
    EXPECT_EQ(client->cdp_post("/group/delete", {{"businessType", "customer_group"}, {"commonGroupId", top}})["msg"], "分组不存在");
}

TEST_F(SimHttp, CustomerAddDeleteUpdateGroupsAndTheWriteLog) {
    const int64_t a = st().add_group("a"), b = st().add_group("b");
    const int64_t smart = st().add_group("s", "", std::nullopt, cdp::kSmartGroup);
    st().add_customers(1, 10);
    st().add_membership(3, smart);

    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 3}, {"customerGroupIdList", {a, b}}})["code"], 0);
    EXPECT_EQ(st().groups_of(3), (std::vector<int64_t>{a, b, smart}));
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerDeleteGroups", {{"customerId", "3"}, {"customerGroupIdList", {std::to_string(a)}}})["code"], 0)
        << "a Long may come as a string";
    EXPECT_EQ(st().groups_of(3), (std::vector<int64_t>{b, smart}));
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerUpdateGroups", {{"customerId", 3}, {"customerGroupIdList", {a}}})["code"], 0);
    EXPECT_EQ(st().groups_of(3), (std::vector<int64_t>{a, smart}));

    // The rules.
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 3}, {"customerGroupIdList", {smart}}})["msg"], "智能群组不能手动添加客户");
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerDeleteGroups", {{"customerId", 3}, {"customerGroupIdList", {smart}}})["msg"], "智能群组不能手动删除客户");
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 999}, {"customerGroupIdList", {a}}})["msg"], "客户不存在");
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 3}, {"customerGroupIdList", {424242}}})["msg"], "群组不存在");
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 3}})["msg"], "参数customerGroupIdList不能为空");
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 3}, {"customerGroupIdList", a}})["msg"], "参数customerGroupIdList类型错误");
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 3.5}, {"customerGroupIdList", {a}}})["msg"], "参数customerId类型错误");
    EXPECT_EQ(client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerGroupIdList", {a}}})["msg"], "参数customerId不能为空");
    EXPECT_EQ(st().groups_of(3), (std::vector<int64_t>{a, smart})) << "refused calls change nothing";

    auto log = st().write_log();
    ASSERT_EQ(log.size(), 11u);
    EXPECT_EQ(log[0].endpoint, "customer-group-ref/customerAddGroups");
    EXPECT_EQ(log[0].customer_id, 3);
    EXPECT_EQ(log[0].group_ids, (std::vector<int64_t>{a, b}));
    EXPECT_EQ(log[0].code, 0);
    EXPECT_EQ(log[3].code, -1);
    EXPECT_EQ(log[3].msg, "智能群组不能手动添加客户");
    json http_log = client->get("/__sim/write-log?endpoint=customerDeleteGroups").json();
    ASSERT_EQ(http_log.size(), 2u);
    EXPECT_EQ(http_log[0]["customerId"], 3);
    EXPECT_EQ(http_log[0]["groupIds"], json::array({a}));
    EXPECT_EQ(endpoint_count("customer-group-ref/customerAddGroups", "ok"), 1);
    EXPECT_EQ(endpoint_count("customer-group-ref/customerAddGroups", "code_-1"), 7);
}

TEST_F(SimHttp, GetGroupsByCustomerIdByType) {
    const int64_t f = st().add_folder("f");
    const int64_t a = st().add_group("a", "", f);
    const int64_t smart = st().add_group("s", "", std::nullopt, cdp::kSmartGroup);
    st().add_membership(8, a);
    st().add_membership(8, smart);
    json r = client->cdp_get("/customer-group-ref/getGroupsByCustomerId?customerId=8&type=1");
    ASSERT_EQ(r["code"], 0) << r;
    ASSERT_EQ(r["data"].size(), 1u);
    EXPECT_EQ(r["data"][0]["id"], a);
    EXPECT_EQ(r["data"][0]["name"], "a");
    EXPECT_EQ(r["data"][0]["groupId"], std::to_string(f));
    r = client->cdp_get("/customer-group-ref/getGroupsByCustomerId?customerId=8&type=2");
    EXPECT_EQ(r["data"][0]["id"], smart);
    EXPECT_EQ(client->cdp_get("/customer-group-ref/getGroupsByCustomerId?customerId=9&type=1")["msg"], "客户不存在");
    EXPECT_EQ(client->cdp_get("/customer-group-ref/getGroupsByCustomerId?customerId=8")["msg"], "参数type不能为空");
}

TEST_F(SimHttp, HttpLevelErrors) {
    EXPECT_EQ(client->get("/openapi/customer-group/nope").status, 404);
    EXPECT_EQ(client->get("/elsewhere").status, 404);
    EXPECT_EQ(client->get("/openapi/customer-group-ref/customerAddGroups").status, 405);
    EXPECT_EQ(client->request("POST", "/openapi/customer-group/addSingleGroup", R"({"name":"x","type":1})", "text/plain").status, 415);
    Response bad = client->request("POST", "/openapi/customer-group/addSingleGroup", "{not json");
    EXPECT_EQ(bad.status, 200);
    EXPECT_EQ(bad.json()["code"], -1);
    EXPECT_EQ(st().group_count(), 0);
}

TEST_F(SimHttp, LongsAsStringsWhenAsked) {
    ServerOptions o;
    o.longs_as_strings = true;
    start(o);
    const int64_t f = st().add_folder("f");
    const int64_t g = st().add_group("g", "", f);
    st().add_membership(77, g);
    json r = client->cdp_get("/customer-group/simpleQuery?current=1&size=10");
    EXPECT_EQ(r["code"], 0) << "the envelope's code stays a number";
    EXPECT_EQ(r["data"]["total"], "1");
    EXPECT_EQ(r["data"]["records"][0]["id"], std::to_string(g));
    EXPECT_EQ(r["data"]["records"][0]["groupId"], std::to_string(f));
    r = client->cdp_get("/customer-group/getCustomerPageByGroupId?customerGroupId=" + std::to_string(g) + "&current=1&size=10");
    EXPECT_EQ(r["data"]["records"][0]["id"], "77");
    r = client->cdp_post("/customer-group/addSingleGroup", {{"name", "new"}, {"type", 1}});
    EXPECT_TRUE(r["data"].is_string()) << r;
}

// ---------------------------------------------------------------- paging edges

TEST_F(SimHttp, PagingEdges) {
    ServerOptions o;
    o.max_page_size = 3;
    start(o);
    const int64_t g = st().add_group("g");
    for (int64_t c = 1; c <= 7; ++c) st().add_membership(c, g);
    const std::string base = "/customer-group/getCustomerPageByGroupId?customerGroupId=" + std::to_string(g);

    json r = client->cdp_get(base + "&current=1&size=100");
    ASSERT_EQ(r["code"], 0);
    EXPECT_EQ(r["data"]["records"].size(), 3u) << "size is capped at the largest page";
    EXPECT_EQ(r["data"]["size"], 3);
    EXPECT_EQ(r["data"]["total"], 7);
    r = client->cdp_get(base + "&current=3&size=3");
    ASSERT_EQ(r["data"]["records"].size(), 1u);
    EXPECT_EQ(r["data"]["records"][0]["id"], 7);
    r = client->cdp_get(base + "&current=4&size=3");
    EXPECT_EQ(r["code"], 0);
    EXPECT_TRUE(r["data"]["records"].empty()) << "beyond the last page: no records";
    EXPECT_EQ(r["data"]["total"], 7);
    EXPECT_EQ(client->cdp_get(base + "&current=99999999999&size=3")["data"]["records"].size(), 0u);
    EXPECT_EQ(client->cdp_get(base + "&current=1&size=0")["code"], -1);
    EXPECT_EQ(client->cdp_get(base + "&current=1&size=-5")["code"], -1);
    EXPECT_EQ(client->cdp_get(base + "&current=0&size=3")["code"], -1);
    EXPECT_EQ(client->cdp_get(base + "&current=1&size=x")["code"], -1);
    EXPECT_EQ(client->cdp_get(base + "&current=1")["code"], -1);
    EXPECT_EQ(client->cdp_get("/customer-group/simpleQuery?current=1&size=0")["code"], -1);

    // total is live while paging.
    st().add_membership(100, g);
    EXPECT_EQ(client->cdp_get(base + "&current=1&size=3")["data"]["total"], 8);
}

// ---------------------------------------------------------------- the token

TEST_F(SimHttp, WrongOrMissingTokenIsRefusedWith401) {
    st().add_customers(1, 1);
    const int64_t g = st().add_group("g");
    client->token = "wrong";
    Response r = client->post("/openapi/customer-group-ref/customerAddGroups", {{"customerId", 1}, {"customerGroupIdList", {g}}});
    EXPECT_EQ(r.status, 401);
    client->send_token = false;
    EXPECT_EQ(client->get("/openapi/customer-group/simpleQuery?current=1&size=1").status, 401);
    EXPECT_FALSE(st().is_member(1, g));
    EXPECT_EQ(endpoint_count("customer-group-ref/customerAddGroups", "auth_refused"), 1);
    // The admin API needs no token.
    EXPECT_EQ(client->get("/__sim/health").status, 200);
}

TEST_F(SimHttp, WrongTokenIsRefusedWithCodeMinus1WhenConfigured) {
    ServerOptions o;
    o.token = "secret";
    o.auth_failure = AuthFailure::code_minus_1;
    start(o);
    Response r = client->get("/openapi/customer-group/simpleQuery?current=1&size=1");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.json()["code"], -1);
    EXPECT_EQ(r.json()["msg"], "token无效或已过期");
    client->token = "secret";
    EXPECT_EQ(client->cdp_get("/customer-group/simpleQuery?current=1&size=1")["code"], 0);
}

// ---------------------------------------------------------------- the rate limit

TEST_F(SimHttp, RateLimitAnswers429WithRetryAfterAndCountsThem) {
    ServerOptions o;
    o.rate_limit_qps = 5;
    start(o);
    int ok = 0, limited = 0;
    for (int i = 0; i < 30; ++i) {
        Response r = client->get("/openapi/customer-group/simpleQuery?current=1&size=1");
        if (r.status == 200) ++ok;
        if (r.status == 429) {
            ++limited;
            EXPECT_EQ(r.headers["retry-after"], "1");
        }
    }
    EXPECT_EQ(ok + limited, 30);
    EXPECT_GE(limited, 1);
    EXPECT_GE(ok, 5);
    json s = stats();
    EXPECT_EQ(s["rate_limited"], limited);
    EXPECT_EQ(s["sent_429"], limited);
    EXPECT_LE(s["max_requests_per_second"].get<int>(), 5);
    EXPECT_GT(s["max_arrivals_per_second"].get<int>(), 5);
    EXPECT_EQ(s["endpoints"]["customer-group/simpleQuery"]["rate_limited"], limited);

    // Admin calls are never limited, and the limit changes at run time.
    for (int i = 0; i < 10; ++i) EXPECT_EQ(client->get("/__sim/stats").status, 200);
    EXPECT_EQ(client->put("/__sim/rate-limit", {{"qps", 0}}).status, 200);
    EXPECT_EQ(server->rate_limit(), 0);
    for (int i = 0; i < 20; ++i)
        EXPECT_EQ(client->get("/openapi/customer-group/simpleQuery?current=1&size=1").status, 200);
}

TEST_F(SimHttp, RateLimitBelowOneQpsAllowsOneCallPerPeriod) {
    server->set_rate_limit(0.5);  // one call every 2 s
    EXPECT_EQ(client->get("/openapi/customer-group/simpleQuery?current=1&size=1").status, 200);
    EXPECT_EQ(client->get("/openapi/customer-group/simpleQuery?current=1&size=1").status, 429);
}

// quirk limit.fixed_window: the count restarts at each whole second of the clock.
TEST_F(SimHttp, FixedWindowLimitRestartsItsCountAtEachWholeSecond) {
    server->set_rate_limit(5);
    auto q = st().quirks();
    q.limit.fixed_window = true;
    st().set_quirks(q);
    using Clock = std::chrono::steady_clock;
    auto at_offset_in_next_second = [](std::chrono::milliseconds offset) {
        const auto now = Clock::now();
        std::this_thread::sleep_until(now - now.time_since_epoch() % std::chrono::seconds(1) + std::chrono::seconds(1) +
                                      offset);
    };
    auto call = [&] { return client->get("/openapi/customer-group/simpleQuery?current=1&size=1").status; };
    // Late in one second: 5 pass, the 6th is refused ...
    at_offset_in_next_second(std::chrono::milliseconds(700));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(call(), 200) << i;
    EXPECT_EQ(call(), 429);
    // ... and early in the next, ~300 ms later, 5 pass again, where a sliding second would
    // still hold the first 5.
    at_offset_in_next_second(std::chrono::milliseconds(10));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(call(), 200) << i;
    EXPECT_EQ(call(), 429);
    EXPECT_EQ(stats()["sent_429"], 2);
}

// ---------------------------------------------------------------- faults

class SimFaultsHttp : public SimHttp {
protected:
    void SetUp() override {
        SimHttp::SetUp();
        group = st().add_group("g");
        st().add_customers(1, 100);
    }
    Response add(int64_t customer) {
        return client->post("/openapi/customer-group-ref/customerAddGroups",
                            {{"customerId", customer}, {"customerGroupIdList", {group}}});
    }
    void script(const json& entry) { ASSERT_EQ(client->post("/__sim/faults/script", entry).status, 200); }
    int64_t group = 0;
};

TEST_F(SimFaultsHttp, Http5xxIsNotApplied) {
    script({{"endpoint", "customerAddGroups"}, {"kind", "http_5xx"}, {"http_status", 502}});
    Response r = add(1);
    EXPECT_EQ(r.status, 502);
    EXPECT_NE(r.body.find("502"), std::string::npos);
    EXPECT_FALSE(st().is_member(1, group));
    EXPECT_EQ(add(1).status, 200) << "the script entry is used up";
    EXPECT_TRUE(st().is_member(1, group));
    EXPECT_EQ(endpoint_count("customer-group-ref/customerAddGroups", "fault_http_5xx"), 1);
}

TEST_F(SimFaultsHttp, A429BurstHasRetryAfterAndIsCounted) {
    FaultConfig cfg;
    cfg.endpoints["customerAddGroups"].burst_429_probability = 1;
    cfg.endpoints["customerAddGroups"].burst_429_length = 3;
    cfg.endpoints["customerAddGroups"].retry_after_s = 2;
    server->faults().configure(cfg);
    for (int i = 0; i < 3; ++i) {
        Response r = add(1);
        EXPECT_EQ(r.status, 429);
        EXPECT_EQ(r.headers["retry-after"], "2");
    }
    EXPECT_FALSE(st().is_member(1, group));
    EXPECT_EQ(stats()["sent_429"], 3);
    EXPECT_EQ(stats()["rate_limited"], 0);
    // Other endpoints follow the (empty) global rule.
    EXPECT_EQ(client->get("/openapi/customer-group/simpleQuery?current=1&size=1").status, 200);
}

TEST_F(SimFaultsHttp, TransientCodeIsNotApplied) {
    script({{"endpoint", "customerAddGroups"}, {"kind", "transient_code"}});
    Response r = add(1);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.json()["code"], -1);
    EXPECT_EQ(r.json()["msg"], "系统繁忙");
    EXPECT_FALSE(st().is_member(1, group));
}

TEST_F(SimFaultsHttp, NonJsonBodyIsNotApplied) {
    script({{"endpoint", "customerAddGroups"}, {"kind", "non_json_body"}});
    Response r = add(1);
    ASSERT_EQ(r.status, 200);
    EXPECT_TRUE(json::parse(r.body, nullptr, false).is_discarded()) << r.body;
    EXPECT_FALSE(st().is_member(1, group));
}

TEST_F(SimFaultsHttp, TruncatedBodyLosesTheReplyButNotTheWrite) {
    script({{"endpoint", "customerAddGroups"}, {"kind", "truncated_body"}});
    Response r = add(1);
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.error, "") << "the client sees a broken reply";
    EXPECT_TRUE(st().is_member(1, group));
    auto log = st().write_log();
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].code, 0);
    EXPECT_EQ(endpoint_count("customer-group-ref/customerAddGroups", "fault_truncated_body"), 1);
    EXPECT_EQ(add(2).status, 200) << "the client reconnects";
}

TEST_F(SimFaultsHttp, ResetMidResponseLosesTheReplyButNotTheWrite) {
    script({{"endpoint", "customerAddGroups"}, {"kind", "reset"}});
    Response r = add(1);
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.error, "");
    EXPECT_TRUE(st().is_member(1, group));
    EXPECT_EQ(endpoint_count("customer-group-ref/customerAddGroups", "fault_reset"), 1);
    EXPECT_EQ(add(2).status, 200);
}

TEST_F(SimFaultsHttp, WriteLogMarksBrokenRepliesAndInjectedLatency) {
    script({{"endpoint", "customerAddGroups"}, {"kind", "reset"}});
    script({{"endpoint", "customerAddGroups"}, {"kind", "truncated_body"}});
    script({{"endpoint", "customerAddGroups"}, {"kind", "none"}, {"delay_ms", 120}});
    add(1);
    add(2);
    EXPECT_EQ(add(3).status, 200);
    EXPECT_EQ(add(4).status, 200);
    auto log = st().write_log();
    ASSERT_EQ(log.size(), 4u);
    EXPECT_EQ(log[0].fault, "reset");
    EXPECT_EQ(log[1].fault, "truncated_body");
    EXPECT_EQ(log[2].fault, "");
    EXPECT_EQ(log[2].delay_ms, 120);
    EXPECT_EQ(log[3].fault, "");
    EXPECT_EQ(log[3].delay_ms, 0);
    for (const auto& e : log) EXPECT_EQ(e.code, 0);
    json http_log = client->get("/__sim/write-log").json();
    ASSERT_EQ(http_log.size(), 4u);
    EXPECT_EQ(http_log[0]["fault"], "reset");
    EXPECT_EQ(http_log[2]["delayMs"], 120);
}

TEST_F(SimFaultsHttp, LatencyDelaysTheReply) {
    script({{"endpoint", "simpleQuery"}, {"kind", "none"}, {"delay_ms", 300}});
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(client->get("/openapi/customer-group/simpleQuery?current=1&size=1").status, 200);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
}

TEST_F(SimFaultsHttp, RandomFaultsRepeatForTheSameSeed) {
    const json cfg = {{"seed", 11},
                      {"global", {{"error_5xx_probability", 0.2}, {"transient_code_probability", 0.2},
                                  {"non_json_body_probability", 0.1}}}};
    auto run = [&] {
        EXPECT_EQ(client->put("/__sim/faults", cfg).status, 200);
        std::string outcomes;
        for (int i = 0; i < 60; ++i) {
            Response r = client->get("/openapi/customer-group/simpleQuery?current=1&size=1");
            outcomes += std::to_string(r.status) + (r.body.front() == '{' ? r.json()["code"].dump() : "h") + ",";
        }
        return outcomes;
    };
    const std::string first = run();
    EXPECT_EQ(run(), first);
    EXPECT_NE(first.find("-1"), std::string::npos);
    EXPECT_NE(first.find("h"), std::string::npos);
    EXPECT_NE(first.find("2000"), std::string::npos);
    EXPECT_EQ(client->request("DELETE", "/__sim/faults", "").status, 200);
    EXPECT_EQ(client->get("/openapi/customer-group/simpleQuery?current=1&size=1").status, 200);
}

// ---------------------------------------------------------------- the admin API

TEST_F(SimHttp, AdminSeedDumpAndReset) {
    json seed = {
        {"folders", {{{"name", "top"}}}},
        {"groups", {{{"name", "a"}, {"folder", "top"}}, {{"name", "s"}, {"type", 2}}}},
        {"customers", {{"first", 1}, {"count", 5}}},
        {"memberships", {{1, 10001}, {{"customerId", 2}, {"group", "s"}}, {{"customerId", 9}, {"groupId", 10001}}}},
    };
    Response r = client->post("/__sim/seed", seed);
    ASSERT_EQ(r.status, 200) << r.body;
    json out = r.json();
    EXPECT_EQ(out["memberships"], 3);
    EXPECT_EQ(out["groups"][0]["id"], 10001);
    EXPECT_EQ(out["groups"][0]["groupId"], out["folders"][0]["id"]);
    EXPECT_EQ(st().members_of(10001), (std::vector<int64_t>{1, 9}));
    EXPECT_EQ(st().groups_of(2, cdp::kSmartGroup), std::vector<int64_t>{10002});
    EXPECT_EQ(st().customer_count(), 6) << "a membership creates its customer";

    json gen = client->post("/__sim/seed", {{"generate", {{"customers", 1000}, {"groups", 4}, {"memberships", 3000},
                                                          {"first_customer_id", 100000}, {"smart_groups", 1}}}}).json();
    EXPECT_EQ(gen["generated"]["group_ids"].size(), 4u);
    EXPECT_EQ(gen["totals"]["memberships"], 3003);

    json dump = client->get("/__sim/state").json();
    EXPECT_EQ(dump["memberships"], 3003);
    EXPECT_EQ(dump["groups"].size(), 6u);
    EXPECT_EQ(dump["groups"][0]["members"], json::array({1, 9}));
    EXPECT_FALSE(client->get("/__sim/state?members=0").json()["groups"][0].contains("members"));
    json one = client->get("/__sim/state?group=10001").json();
    EXPECT_EQ(one["members"], json::array({1, 9}));
    EXPECT_EQ(client->get("/__sim/state?group=1").status, 404);

    EXPECT_EQ(client->post("/__sim/seed", {{"memberships", {{1, 424242}}}}).status, 400);
    EXPECT_EQ(client->request("POST", "/__sim/seed", "{oops").status, 400);
    EXPECT_EQ(client->get("/__sim/nothing-here").status, 404);

    client->get("/openapi/customer-group/simpleQuery?current=1&size=1");
    EXPECT_EQ(client->post("/__sim/reset", json::object()).status, 200);
    EXPECT_EQ(st().group_count(), 0);
    EXPECT_EQ(stats()["total"], 0);
}

TEST_F(SimHttp, AnswersExpectContinueBeforeABigBody) {
    auto [interim, status] = test::post_expecting_continue(server->port(), "/__sim/seed",
                                                           R"({"customers": {"first": 1, "count": 10}})");
    EXPECT_EQ(interim, "100 Continue");
    EXPECT_EQ(status, 200);
    EXPECT_EQ(st().customer_count(), 10);
}

TEST_F(SimHttp, AdminStatsWriteLogFaultsAndRateLimit) {
    st().add_customers(1, 2);
    const int64_t g = st().add_group("g");
    for (int i = 0; i < 3; ++i)  // the same write three times: a duplicate a test can spot
        client->cdp_post("/customer-group-ref/customerAddGroups", {{"customerId", 1}, {"customerGroupIdList", {g}}});
    client->cdp_get("/customer-group/simpleQuery?current=1&size=1");
    json s = stats();
    EXPECT_EQ(s["total"], 4);
    EXPECT_EQ(s["write_calls"], 3);
    EXPECT_EQ(s["endpoints"]["customer-group-ref/customerAddGroups"]["calls"], 3);
    EXPECT_EQ(s["endpoints"]["customer-group/simpleQuery"]["ok"], 1);
    EXPECT_EQ(s["outcomes"]["ok"], 4);
    EXPECT_GE(s["max_requests_per_second"].get<int>(), 1);
    json log = client->get("/__sim/write-log").json();
    ASSERT_EQ(log.size(), 3u);
    EXPECT_EQ(log[0]["customerId"], 1);
    EXPECT_EQ(log[2]["groupIds"], json::array({g}));
    EXPECT_GT(log[0]["timeMs"].get<int64_t>(), 0);

    EXPECT_EQ(client->post("/__sim/stats/reset", json::object()).status, 200);
    EXPECT_EQ(stats()["total"], 0);
    EXPECT_TRUE(client->get("/__sim/write-log").json().empty());

    json f = client->put("/__sim/faults", {{"global", {{"latency_ms", 1}}},
                                           {"endpoints", {{"customerAddGroups", {{"reset_probability", 0.5}}}}}}).json();
    EXPECT_EQ(f["global"]["latency_ms"], 1);
    EXPECT_EQ(client->get("/__sim/faults").json()["endpoints"]["customerAddGroups"]["reset_probability"], 0.5);
    EXPECT_EQ(server->faults().config().global.latency_ms, 1);
    EXPECT_EQ(client->put("/__sim/faults", {{"global", {{"bogus", 1}}}}).status, 400);
    EXPECT_EQ(server->faults().config().global.latency_ms, 1) << "a bad config changes nothing";

    json q = client->get("/__sim/quirks").json();
    for (const char* section : {"write", "read", "groups", "limit"}) EXPECT_TRUE(q.contains(section)) << section;
    EXPECT_EQ(client->put("/__sim/quirks", {{"bogus", json::object()}}).status, 400);
    EXPECT_EQ(client->put("/__sim/quirks", {{"write", {{"bogus", 1}}}}).status, 400);
    EXPECT_EQ(client->put("/__sim/quirks", json::object()).status, 200);

    EXPECT_EQ(client->put("/__sim/rate-limit", {{"qps", 12.5}}).json()["qps"], 12.5);
    EXPECT_EQ(client->get("/__sim/rate-limit").json()["qps"], 12.5);
    EXPECT_EQ(client->put("/__sim/rate-limit", {{"qps", "x"}}).status, 400);
}

TEST_F(SimHttp, CapturesRequestsWhenAsked) {
    ServerOptions o;
    o.request_capture = 2;
    start(o);
    for (int i = 1; i <= 3; ++i) client->cdp_get("/customer-group/simpleQuery?current=" + std::to_string(i) + "&size=1");
    auto reqs = server->captured_requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[1].target, "/openapi/customer-group/simpleQuery?current=3&size=1");
    EXPECT_EQ(reqs[1].method, "GET");
    bool token = false;
    for (const auto& [k, v] : reqs[1].headers) token |= (k == "token" && v == "sim-token");
    EXPECT_TRUE(token);
    EXPECT_EQ(client->get("/__sim/requests").json().size(), 2u);
}

TEST_F(SimHttp, ConcurrentClientsOnSeveralThreadsKeepStateConsistent) {
    ServerOptions o;
    o.threads = 2;
    start(o);
    st().add_customers(1, 400);
    const int64_t g = st().add_group("g");
    std::vector<std::thread> workers;
    for (int w = 0; w < 4; ++w)
        workers.emplace_back([&, w] {
            Client c(server->port());
            for (int64_t id = 1 + w * 100; id <= (w + 1) * 100; ++id) {
                auto r = c.post("/openapi/customer-group-ref/customerAddGroups", {{"customerId", id}, {"customerGroupIdList", {g}}});
                EXPECT_EQ(r.status, 200);
                if (id % 2 == 0)
                    c.post("/openapi/customer-group-ref/customerDeleteGroups", {{"customerId", id}, {"customerGroupIdList", {g}}});
            }
        });
    for (auto& t : workers) t.join();
    EXPECT_EQ(st().members_of(g).size(), 200u);
    EXPECT_EQ(st().group(g)->customer_total, 200);
    EXPECT_EQ(stats()["total"], 600);
}

// ---------------------------------------------------------------- TLS

TEST(SimTls, ServesHttpsWithTheGivenCertificate) {
    testing::TestPki pki;
    const auto leaf = pki.issue("localhost", {"localhost"}, {"127.0.0.1"});
    ServerOptions o;
    o.tls_cert_file = leaf.cert_file;
    o.tls_key_file = leaf.key_file;
    Server server(o);
    server.start();
    EXPECT_EQ(server.base_url().rfind("https://127.0.0.1:", 0), 0u) << server.base_url();
    Client tls(server.port(), true, pki.ca_file());
    json r = tls.cdp_get("/customer-group/simpleQuery?current=1&size=1");
    EXPECT_EQ(r["code"], 0);
    EXPECT_EQ(tls.get("/__sim/health").status, 200);
    Client plain(server.port());
    EXPECT_EQ(plain.get("/__sim/health").status, 0) << "plain HTTP to a TLS port fails";
    server.stop();
}

// ---------------------------------------------------------------- the executable

// Runs cdp-sync-sim with the given flags until it prints "listening on URL".
struct SimProcess {
    std::unique_ptr<testing::ChildProcess> child;
    std::string url;
    uint16_t port = 0;

    explicit SimProcess(const std::vector<std::string>& args) {
        static int n = 0;
        testing::ChildOptions o;
        o.stdout_path = fs::temp_directory_path() /
                        ("cdp-sync-sim-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + ".out");
        o.stderr_path = "/dev/null";
        child = std::make_unique<testing::ChildProcess>(testing::built_binary("cdp-sync-sim"), args, o);
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (url.empty() && child->running() && std::chrono::steady_clock::now() < end) {
            std::istringstream out(child->output());
            for (std::string line; std::getline(out, line);)
                if (line.rfind("listening on ", 0) == 0) url = line.substr(13);
            if (url.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        fs::remove(o.stdout_path);
        if (!url.empty()) port = static_cast<uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
    }
    int stop(int sig = SIGTERM) { return child->stop(sig); }
};

bool have_binary() { return fs::exists(std::string(CDP_SYNC_BINARY_DIR) + "/cdp-sync-sim"); }

TEST(SimBinary, PrintsListeningAndStopsOnSigterm) {
    if (!have_binary()) GTEST_SKIP() << "build the cdp-sync-sim target first";
    SimProcess sim({"--port", "0", "--seed-demo", "--log-level", "warn"});
    ASSERT_NE(sim.port, 0) << "no 'listening on' line";
    EXPECT_EQ(sim.url.substr(sim.url.rfind('/')), "/openapi");
    Client c(sim.port);
    json r = c.cdp_get("/customer-group/simpleQuery?current=1&size=10");
    EXPECT_EQ(r["data"]["total"], 3) << "the demo groups";
    EXPECT_EQ(sim.stop(), 0) << "a clean exit, with a keep-alive connection still open";
}

TEST(SimBinary, FlagsForTokenAuthModePrefixAndFaults) {
    if (!have_binary()) GTEST_SKIP() << "build the cdp-sync-sim target first";
    const fs::path dir = fs::temp_directory_path() / ("sim-flags-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "token") << "file-token\n";
    std::ofstream(dir / "faults.yaml") << "endpoints:\n  getGroupsByCustomerId:\n    error_5xx_probability: 1\n"
                                          "    error_5xx_codes: [503]\n";
    SimProcess sim({"--prefix", "/cdp/", "--token-file", (dir / "token").string(), "--auth-failure", "code",
                    "--faults", (dir / "faults.yaml").string(), "--fault", "simpleQuery.transient_code_probability=1",
                    "--max-page-size", "2", "--log-level", "warn"});
    ASSERT_NE(sim.port, 0);
    EXPECT_EQ(sim.url.substr(sim.url.rfind('/')), "/cdp");
    Client c(sim.port);
    c.token = "file-token";
    Response r = c.get("/cdp/customer-group/simpleQuery?current=1&size=1");
    EXPECT_EQ(r.json()["msg"], "系统繁忙");
    EXPECT_EQ(c.get("/cdp/customer-group-ref/getGroupsByCustomerId?customerId=1&type=1").status, 503);
    EXPECT_EQ(c.get("/openapi/group/queryTreeFormList?businessType=customer_group").status, 404);
    json tree = c.get("/cdp/group/queryTreeFormList?businessType=customer_group").json();
    EXPECT_EQ(tree["code"], 0);
    c.token = "other";
    EXPECT_EQ(c.get("/cdp/group/queryTreeFormList?businessType=customer_group").json()["msg"], "token无效或已过期");
    EXPECT_EQ(sim.stop(SIGINT), 0);
    fs::remove_all(dir);
}

TEST(SimBinary, RefusesBadFlags) {
    if (!have_binary()) GTEST_SKIP() << "build the cdp-sync-sim target first";
    auto exit_code = [&](const std::vector<std::string>& args) {
        testing::ChildOptions o;
        o.stdout_path = "/dev/null";
        return testing::run_to_end(testing::built_binary("cdp-sync-sim"), args, o).exit_code;
    };
    EXPECT_EQ(exit_code({"--help"}), 0);
    EXPECT_EQ(exit_code({"--no-such-flag"}), 2);
    EXPECT_EQ(exit_code({"--port", "x"}), 2);
    EXPECT_EQ(exit_code({"--fault", "reset_probability=2"}), 2);
    EXPECT_EQ(exit_code({"--tls-cert", "only.pem"}), 2);
    EXPECT_EQ(exit_code({"--auth-failure", "maybe"}), 2);
}

}  // namespace
}  // namespace cdpsync::sim
