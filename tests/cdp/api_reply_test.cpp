// How cdp::Api reads replies (tolerant parsing, malformed bodies) and when it retries
// (5xx, 429 + Retry-After, timeouts, resets, code -1 transient), re-reads the token, or gives
// up. A raw test server answers exactly what each test scripts; attempts are counted there.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>

#include <boost/asio/steady_timer.hpp>

#include "api_test_util.hpp"

namespace cdpsync::cdp {
namespace {

using test::fail_body;
using test::fast_options;
using test::Harness;
using test::ok_body;
using cdpsync::testing::Action;
using cdpsync::testing::TestRequest;
using cdpsync::testing::TestResponse;
using cdpsync::testing::TestServer;

TestResponse reply(const std::string& body, unsigned status = 200) {
    TestResponse r;
    r.status = status;
    r.body = body;
    return r;
}

// Answers the scripted responses in order, then `last` forever.
TestServer::Handler script(std::vector<TestResponse> first, TestResponse last) {
    auto state = std::make_shared<std::pair<std::mutex, size_t>>();
    return [state, first = std::move(first), last = std::move(last)](const TestRequest&) {
        std::lock_guard lock(state->first);
        const size_t i = state->second++;
        return i < first.size() ? first[i] : last;
    };
}

TestResponse action(Action a) {
    TestResponse r;
    r.action = a;
    r.body = ok_body();
    return r;
}

const json kGroupPage = json::parse(R"({
    "current": "1", "size": 10, "total": "2",
    "records": [
        {"id": "123456789012345678", "name": "VIP", "groupId": "77", "type": "1", "customerTotal": "12",
         "somethingNew": {"nested": true}, "createTime": "2026-01-01"},
        {"id": 5}
    ]})");

// ---- parsing -------------------------------------------------------------------------

TEST(ApiReply, LongsAsStringsUnknownAndMissingFieldsAreAccepted) {
    TestServer server({}, [](const TestRequest&) { return reply(ok_body(kGroupPage)); });
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.query_groups({}));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    ASSERT_EQ(r.value().records.size(), 2u);
    EXPECT_EQ(r.value().total, 2);
    const Group& g = r.value().records[0];
    EXPECT_EQ(g.id, 123456789012345678);
    EXPECT_EQ(g.folder_id, 77);
    EXPECT_EQ(g.customer_total, 12);
    EXPECT_EQ(g.type, kStaticGroup);
    const Group& bare = r.value().records[1];
    EXPECT_EQ(bare.id, 5);
    EXPECT_EQ(bare.name, "");
    EXPECT_FALSE(bare.folder_id);
}

TEST(ApiReply, CreatedIdMayBeAString) {
    TestServer server({}, [](const TestRequest&) { return reply(ok_body("9007199254740993")); });
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.create_group({"g", "", std::nullopt}));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(r.value(), 9007199254740993);
}

TEST(ApiReply, NullListDataIsAnEmptyList) {
    TestServer server({}, [](const TestRequest&) { return reply(R"({"code":0,"msg":"ok"})"); });
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.folder_tree());
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_TRUE(r.value().empty());
}

TEST(ApiReply, MemberIdHonoursTheConfiguredField) {
    const json page = json::parse(R"({"current":1,"size":10,"total":3,"records":[
        {"cid": "11", "id": 999}, {"cid": 12, "customerId": 5}, {"cid": 13, "nickName": "x"}]})");
    TestServer server({}, [&](const TestRequest&) { return reply(ok_body(page)); });
    auto options = fast_options(server.base_url());
    options.customer_id_field = "cid";
    Harness h(options);
    auto r = h.run(h.api.members_page(1, 1, 10));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    std::vector<int64_t> ids;
    for (const auto& m : r.value().records) ids.push_back(m.customer_id);
    EXPECT_EQ(ids, (std::vector<int64_t>{11, 12, 13}));
    EXPECT_EQ(r.value().records[2].record["nickName"], "x");
}

TEST(ApiReply, MemberIdByDefaultIsCustomerIdWhenTheRecordHasOne) {
    const json page = json::parse(R"({"current":1,"size":10,"total":2,"records":[
        {"id": 90001, "customerId": "11"}, {"id": 12}]})");
    TestServer server({}, [&](const TestRequest&) { return reply(ok_body(page)); });
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.members_page(1, 1, 10));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    ASSERT_EQ(r.value().records.size(), 2u);
    EXPECT_EQ(r.value().records[0].customer_id, 11);
    EXPECT_EQ(r.value().records[1].customer_id, 12);
}

TEST(ApiReply, NullDataOnPagedEndpointsIsAnEmptyList) {
    TestServer server({}, [&](const TestRequest&) { return reply(R"({"code":0,"msg":"success","data":null})"); });
    Harness h(fast_options(server.base_url()));
    auto groups = h.run(h.api.query_all_groups("nobody"));
    ASSERT_TRUE(groups.has_value()) << groups.error().describe();
    EXPECT_TRUE(groups.value().empty());
    int pages = 0;
    cdp::Api::MemberPageHandler on_page = [&](int64_t, Page<Member>&& p) {
        ++pages;
        EXPECT_TRUE(p.records.empty());
    };
    auto members = h.run(h.api.for_each_member_page(7, std::move(on_page)));
    ASSERT_TRUE(members.has_value()) << members.error().describe();
    EXPECT_EQ(pages, 1);
    auto of_customer = h.run(h.api.groups_of_customer(5));
    ASSERT_TRUE(of_customer.has_value()) << of_customer.error().describe();
    EXPECT_TRUE(of_customer.value().empty());
}

struct MalformedCase {
    const char* name;
    std::string body;
    const char* expect_in_msg;
    bool retried = false;  // no JSON at all: a proxy's page, retried like a 502
};

class ApiMalformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(ApiMalformed, IsAMalformedErrorRetriedOnlyWhenTheBodyIsNoJsonAtAll) {
    const auto& c = GetParam();
    TestServer server({}, [&](const TestRequest&) { return reply(c.body); });
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.query_groups({}));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::malformed) << r.error().describe();
    EXPECT_EQ(r.error().endpoint, path::simple_query);
    EXPECT_EQ(r.error().http_status, 200u);
    EXPECT_NE(r.error().msg.find(c.expect_in_msg), std::string::npos) << r.error().msg;
    EXPECT_EQ(r.error().transient(), c.retried);
    EXPECT_EQ(server.requests().size(), c.retried ? 4u : 1u);
    EXPECT_EQ(h.api.stats().failures, 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, ApiMalformed,
    ::testing::Values(MalformedCase{"NotJson", "<html><body>502 Bad Gateway</body></html>", "not JSON", true},
                      MalformedCase{"Empty", "", "not JSON", true},
                      MalformedCase{"Truncated", R"({"code":0,"data":{"records":[)", "not JSON", true},
                      MalformedCase{"NoCode", R"({"msg":"ok","data":{}})", "code"},
                      MalformedCase{"NotAnObject", R"([1,2,3])", "not an object"},
                      MalformedCase{"CodeIsText", R"({"code":"zero","data":{}})", "code"},
                      MalformedCase{"DataNotAnObject", R"({"code":0,"data":"page"})", "not an object"},
                      MalformedCase{"RecordsNotAnArray", R"({"code":0,"data":{"total":1,"records":{"id":1}}})",
                                    "records"},
                      MalformedCase{"IdIsAnObject", R"({"code":0,"data":{"total":1,"records":[{"id":{"v":1}}]}})",
                                    "id"},
                      MalformedCase{"RecordWithoutId", R"({"code":0,"data":{"total":1,"records":[{"name":"x"}]}})",
                                    "id"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ApiReply, NonNumericCreatedIdIsMalformed) {
    TestServer server({}, [](const TestRequest&) { return reply(ok_body("abc")); });
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.add_folder("f"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::malformed);
    EXPECT_EQ(r.error().endpoint, path::folder_add);
}

// ---- retries -------------------------------------------------------------------------

TEST(ApiRetry, ServerErrorsAreRetriedUntilSuccess) {
    TestServer server({}, script({reply("oops", 500), reply("<html>bad gateway</html>", 502)}, reply(ok_body())));
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.delete_group(1));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(server.requests().size(), 3u);
    EXPECT_EQ(h.api.stats().calls, 3u);
    EXPECT_EQ(h.api.stats().retries, 2u);
    EXPECT_EQ(h.api.stats().failures, 0u);
}

TEST(ApiRetry, GivesUpAfterMaxAttemptsWithEndpointAndStatus) {
    TestServer server({}, [](const TestRequest&) { return reply(fail_body("upstream down", 500), 503); });
    Harness h(fast_options(server.base_url(), 3));
    auto r = h.run(h.api.customer_add_groups({5, {1}}));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(server.requests().size(), 3u);
    EXPECT_EQ(r.error().kind, CallError::Kind::http_status);
    EXPECT_EQ(r.error().http_status, 503u);
    EXPECT_EQ(r.error().attempts, 3);
    EXPECT_EQ(r.error().cdp_code, 500);
    EXPECT_EQ(r.error().msg, "upstream down");
    EXPECT_TRUE(r.error().transient());
    const std::string d = r.error().describe();
    EXPECT_NE(d.find(path::customer_add_groups), std::string::npos) << d;
    EXPECT_NE(d.find("HTTP 503"), std::string::npos) << d;
    EXPECT_NE(d.find("3 attempts"), std::string::npos) << d;
}

TEST(ApiRetry, TooManyRequestsWaitsForRetryAfter) {
    TestResponse limited = reply("slow down", 429);
    limited.headers.emplace_back("Retry-After", "1");
    TestServer server({}, script({limited}, reply(ok_body())));
    auto options = fast_options(server.base_url());
    options.retry.max_delay = std::chrono::milliseconds(5000);  // Retry-After is capped at max_delay
    Harness h(options);
    auto r = h.run(h.api.delete_group(1));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_GE(requests[1].arrival - requests[0].arrival, std::chrono::milliseconds(900));
}

TEST(ApiRetry, TimeoutIsRetried) {
    TestServer server({}, script({action(Action::never_respond)}, reply(ok_body())));
    auto options = fast_options(server.base_url());
    options.http.timeout = std::chrono::milliseconds(200);
    Harness h(options);
    auto r = h.run(h.api.delete_group(1));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(server.requests().size(), 2u);
    EXPECT_EQ(h.api.stats().retries, 1u);
}

TEST(ApiRetry, TimeoutsUntilTheLastAttemptAreATransportError) {
    TestServer server({}, [](const TestRequest&) { return action(Action::never_respond); });
    auto options = fast_options(server.base_url(), 2);
    options.http.timeout = std::chrono::milliseconds(100);
    Harness h(options);
    auto r = h.run(h.api.delete_group(1));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::transport);
    EXPECT_EQ(r.error().transport_kind, http::ErrorKind::timeout);
    EXPECT_EQ(r.error().attempts, 2);
    EXPECT_EQ(server.requests().size(), 2u);
}

TEST(ApiRetry, ConnectionResetIsRetried) {
    TestServer server({}, script({action(Action::reset_mid_response), action(Action::close_before_response)},
                                 reply(ok_body())));
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.delete_group(1));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_GE(server.requests().size(), 3u);  // the client may re-send once on a stale connection
    EXPECT_GE(h.api.stats().retries, 1u);
}

TEST(ApiRetry, BadRequestIsNotRetried) {
    TestServer server({}, [](const TestRequest&) { return reply(fail_body("参数错误"), 400); });
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.delete_group(1));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(server.requests().size(), 1u);
    EXPECT_EQ(r.error().kind, CallError::Kind::http_status);
    EXPECT_EQ(r.error().http_status, 400u);
    EXPECT_EQ(r.error().msg, "参数错误");
    EXPECT_FALSE(r.error().transient());
}

TEST(ApiRetry, TransientCodeMinusOneIsRetried) {
    TestServer server({}, script({reply(fail_body("系统繁忙，请稍后再试")), reply(fail_body("Server busy"))},
                                 reply(ok_body())));
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.customer_delete_groups({5, {1, 2}}));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(server.requests().size(), 3u);
}

TEST(ApiRetry, PersistentTransientCodeEndsAsCdpCodeError) {
    TestServer server({}, [](const TestRequest&) { return reply(fail_body("限流中")); });
    Harness h(fast_options(server.base_url(), 3));
    auto r = h.run(h.api.delete_group(1));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(server.requests().size(), 3u);
    EXPECT_EQ(r.error().kind, CallError::Kind::cdp_code);
    EXPECT_EQ(r.error().cdp_code, -1);
    EXPECT_TRUE(r.error().transient());
}

TEST(ApiRetry, NonTransientCodeMinusOneIsNotRetried) {
    TestServer server({}, [](const TestRequest&) { return reply(fail_body("客户不存在")); });
    Harness h(fast_options(server.base_url()));
    auto r = h.run(h.api.customer_add_groups({5, {1}}));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(server.requests().size(), 1u);
    EXPECT_EQ(r.error().kind, CallError::Kind::cdp_code);
    EXPECT_EQ(r.error().cdp_code, -1);
    EXPECT_EQ(r.error().msg, "客户不存在");
    EXPECT_FALSE(r.error().transient());
    EXPECT_EQ(r.error().describe(), "endpoint /customer-group-ref/customerAddGroups: HTTP 200, code -1: 客户不存在 (after 1 attempt)");
}

TEST(ApiRetry, StopCancelsTheBackoffSleep) {
    TestResponse limited = reply("slow down", 429);
    limited.headers.emplace_back("Retry-After", "30");
    TestServer server({}, [&](const TestRequest&) { return limited; });
    auto options = fast_options(server.base_url());
    options.retry.max_delay = std::chrono::milliseconds(60000);
    Harness h(options);
    boost::asio::steady_timer stopper(h.io, std::chrono::milliseconds(300));
    stopper.async_wait([&](boost::system::error_code) { h.api.stop(); });
    const auto start = std::chrono::steady_clock::now();
    auto r = h.run(h.api.delete_group(1));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::cancelled);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    EXPECT_EQ(server.requests().size(), 1u);
}

// ---- token ---------------------------------------------------------------------------

// A server that accepts one token, switchable by the test.
struct TokenServer {
    std::mutex mu;
    std::string accepted;
    bool refuse_with_code = false;  // code -1 "token无效" instead of HTTP 401
    TestServer server;
    explicit TokenServer(std::string token)
        : accepted(std::move(token)), server({}, [this](const TestRequest& r) { return handle(r); }) {}
    TestResponse handle(const TestRequest& r) {
        std::lock_guard lock(mu);
        if (r.header("token").value_or("") == accepted) return reply(ok_body());
        return refuse_with_code ? reply(fail_body("token无效或已过期")) : reply(R"({"error":"unauthorized"})", 401);
    }
    void accept(std::string token) {
        std::lock_guard lock(mu);
        accepted = std::move(token);
    }
};

TEST(ApiToken, ChangedTokenFileIsReReadAfter401) {
    TokenServer ts("token-one");
    Harness h(fast_options(ts.server.base_url()), "token-one");
    ASSERT_TRUE(h.run(h.api.delete_group(1)).has_value());
    ts.accept("token-two");
    h.token.set("token-two");
    auto r = h.run(h.api.delete_group(2));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    const auto requests = ts.server.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(requests[1].header("token"), "token-one");
    EXPECT_EQ(requests[2].header("token"), "token-two");
    EXPECT_EQ(h.api.stats().token_rereads, 1u);
    // The new token is kept: the next call needs no re-read.
    ASSERT_TRUE(h.run(h.api.delete_group(3)).has_value());
    EXPECT_EQ(ts.server.requests().size(), 4u);
    EXPECT_EQ(h.api.stats().token_rereads, 1u);
}

TEST(ApiToken, TokenMessageWithCodeMinusOneAlsoTriggersTheReRead) {
    TokenServer ts("token-one");
    ts.refuse_with_code = true;
    Harness h(fast_options(ts.server.base_url()), "token-one");
    ASSERT_TRUE(h.run(h.api.delete_group(1)).has_value());
    ts.accept("token-two");
    h.token.set("token-two");
    auto r = h.run(h.api.delete_group(2));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(ts.server.requests().size(), 3u);
    EXPECT_EQ(h.api.stats().token_rereads, 1u);
}

TEST(ApiToken, TokenMessageStillRefusedIsAnAuthErrorWithTheCode) {
    TokenServer ts("the-right-one");
    ts.refuse_with_code = true;
    Harness h(fast_options(ts.server.base_url()), "a-wrong-one");
    auto r = h.run(h.api.delete_group(1));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::auth);
    EXPECT_EQ(r.error().cdp_code, -1);
    EXPECT_EQ(r.error().msg, "token无效或已过期");
    EXPECT_EQ(ts.server.requests().size(), 2u);
}

TEST(ApiToken, StillRefusedAfterReReadIsAnAuthError) {
    TokenServer ts("the-right-one");
    Harness h(fast_options(ts.server.base_url()), "a-wrong-one");
    auto r = h.run(h.api.delete_group(1));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::auth);
    EXPECT_EQ(r.error().http_status, 401u);
    EXPECT_EQ(ts.server.requests().size(), 2u);
    EXPECT_EQ(h.api.stats().token_rereads, 1u);
    EXPECT_FALSE(r.error().transient());
    EXPECT_EQ(r.error().describe().find("a-wrong-one"), std::string::npos);
}

TEST(ApiToken, UnreadableTokenIsAnAuthErrorWithoutAnyRequest) {
    TestServer server;
    Harness h(fast_options(server.base_url()));
    std::filesystem::remove(h.token.path);
    auto r = h.run(h.api.delete_group(1));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::auth);
    EXPECT_NE(r.error().msg.find("token"), std::string::npos) << r.error().msg;
    EXPECT_EQ(server.requests().size(), 0u);
}

TEST(ApiToken, EmptyTokenIsNeverSent) {
    TestServer server({}, [](const TestRequest&) { return reply(ok_body()); });
    Harness h(fast_options(server.base_url()), "");
    for (int i = 0; i < 2; ++i) {
        auto r = h.run(h.api.delete_group(1));
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().kind, CallError::Kind::auth);
    }
    EXPECT_EQ(server.requests().size(), 0u);
    h.token.set("now-there-is-one");
    EXPECT_TRUE(h.run(h.api.delete_group(1)).has_value());
    ASSERT_EQ(server.requests().size(), 1u);
    EXPECT_EQ(server.requests()[0].header("token"), "now-there-is-one");
}

TEST(ApiMessages, TransientAndAuthClassifiers) {
    for (const char* m : {"系统繁忙", "服务繁忙，请稍后再试", "Server Busy", "request timeout", "请求超时", "接口限流",
                          "Too Many Requests"})
        EXPECT_TRUE(is_transient_msg(m)) << m;
    for (const char* m : {"客户不存在", "群组不存在", "参数错误", "", "token无效或已过期"})
        EXPECT_FALSE(is_transient_msg(m)) << m;
    for (const char* m : {"token无效或已过期", "Token expired", "invalid token", "token 已失效", "Unauthorized"})
        EXPECT_TRUE(is_auth_msg(m)) << m;
    for (const char* m : {"客户不存在", "系统繁忙", "", "分组中含有客户，不能删除"}) EXPECT_FALSE(is_auth_msg(m)) << m;
}

}  // namespace
}  // namespace cdpsync::cdp

namespace cdpsync::cdp {
namespace {

TEST(ApiOptionsTest, FromConfigMapsEveryCdpKey) {
    config::CdpConfig c;
    c.base_url = "https://cdp.example/openapi";
    c.ca_file = "/etc/ca.pem";
    c.rate_limit_qps = 7.5;
    c.max_in_flight = 3;
    c.page_size = 500;
    c.timeout_ms = 1234;
    c.retry = {9, 50, 7000};
    c.customer_id_field = "customerId";
    EXPECT_EQ(ApiOptions::from_config(config::CdpConfig{}).customer_id_field, "") << "'' stays auto";
    const ApiOptions o = ApiOptions::from_config(c);
    EXPECT_EQ(o.http.base_url, c.base_url);
    EXPECT_EQ(o.http.ca_file, c.ca_file);
    EXPECT_EQ(o.http.rate_limit_qps, 7.5);
    EXPECT_EQ(o.http.max_in_flight, 3);
    EXPECT_EQ(o.http.timeout, std::chrono::milliseconds(1234));
    EXPECT_EQ(o.retry.max_attempts, 9);
    EXPECT_EQ(o.retry.base_delay, std::chrono::milliseconds(50));
    EXPECT_EQ(o.retry.max_delay, std::chrono::milliseconds(7000));
    EXPECT_EQ(o.page_size, 500);
    EXPECT_EQ(o.max_pages_in_flight, 3);
    EXPECT_EQ(o.customer_id_field, "customerId");
}

}  // namespace
}  // namespace cdpsync::cdp
