// The token never reaches a log, even at trace level through retries, auth failures and
// re-reads; and the Api works over HTTPS against the simulator with a private CA.
#include <gtest/gtest.h>

#include <sstream>

#include <spdlog/sinks/ostream_sink.h>

#include "api_test_util.hpp"
#include "config/logging.hpp"
#include "sim/server.hpp"
#include "support/tls_certs.hpp"

namespace cdpsync::cdp {
namespace {

using test::fail_body;
using test::fast_options;
using test::Harness;
using test::ok_body;
using cdpsync::testing::TestRequest;
using cdpsync::testing::TestResponse;
using cdpsync::testing::TestServer;

// Captures every logger's output at trace level for the test's lifetime.
struct LogCapture {
    std::ostringstream out;
    LogCapture() {
        logging::init_sinks({std::make_shared<spdlog::sinks::ostream_sink_mt>(out)}, "trace");
    }
    ~LogCapture() { logging::init_stderr("info"); }
    std::string text() {
        for (const char* name : {"cdp", "http"}) logging::logger(name)->flush();
        return out.str();
    }
};

TEST(ApiLog, TheTokenNeverAppearsInLogsAtTraceLevel) {
    const std::string first = "tok-FIRST-7f3a9c";
    const std::string second = "tok-SECOND-b81d2e";
    std::mutex mu;
    int n = 0;
    Harness* harness = nullptr;
    // The first token is refused and replaced on disk (so the re-read finds the second);
    // then a 503, a transient code -1, a final refusal, and success.
    TestServer server({}, [&](const TestRequest& r) {
        std::lock_guard lock(mu);
        TestResponse resp;
        if (r.header("token") != second) {
            harness->token.set(second);
            resp.status = 401;
            resp.body = fail_body("token无效或已过期");
            return resp;
        }
        switch (++n) {
        case 1: resp.status = 503; resp.body = "busy"; break;
        case 2: resp.body = fail_body("系统繁忙"); break;
        case 3: resp.body = fail_body("客户不存在"); break;
        default: resp.body = ok_body(json{{"current", 1}, {"size", 10}, {"total", 1}, {"records", {{{"id", 1}}}}});
        }
        return resp;
    });
    LogCapture logs;
    Harness h(fast_options(server.base_url(), 6), first);
    harness = &h;

    auto refused = h.run(h.api.customer_add_groups({1, {2}}));
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().msg, "客户不存在");
    EXPECT_EQ(h.api.stats().token_rereads, 1u);
    auto ok = h.run(h.api.query_all_groups());
    ASSERT_TRUE(ok.has_value()) << ok.error().describe();

    const std::string text = logs.text();
    // The capture works: retries and the re-read were logged...
    EXPECT_NE(text.find("retrying in"), std::string::npos) << text;
    EXPECT_NE(text.find("re-read"), std::string::npos) << text;
    // ...and neither token was.
    EXPECT_EQ(text.find(first), std::string::npos) << text;
    EXPECT_EQ(text.find(second), std::string::npos) << text;
    EXPECT_EQ(text.find("tok-"), std::string::npos) << text;
}

TEST(ApiTls, CallsTheSimulatorOverHttpsWithAPrivateCa) {
    cdpsync::testing::TestPki pki;
    const auto cert = pki.issue("sim", {"localhost"}, {"127.0.0.1"});
    sim::ServerOptions so;
    so.tls_cert_file = cert.cert_file;
    so.tls_key_file = cert.key_file;
    sim::Server server(so);
    server.start();
    ASSERT_EQ(server.base_url().rfind("https://", 0), 0u) << server.base_url();
    const int64_t g = server.state().add_group("tls-group");
    server.state().ensure_customer(77);
    auto options = fast_options(server.base_url());
    options.http.ca_file = pki.ca_file();
    Harness h(options, "sim-token");
    auto add = h.run(h.api.customer_add_groups({77, {g}}));
    ASSERT_TRUE(add.has_value()) << add.error().describe();
    EXPECT_TRUE(server.state().is_member(77, g));
    auto groups = h.run(h.api.query_all_groups("tls"));
    ASSERT_TRUE(groups.has_value()) << groups.error().describe();
    ASSERT_EQ(groups.value().size(), 1u);
    EXPECT_EQ((groups.value())[0].id, g);
}

TEST(ApiTls, AnUntrustedCertificateIsAFinalTransportError) {
    cdpsync::testing::TestPki pki;
    const auto cert = pki.self_signed("sim", {"localhost"}, {"127.0.0.1"});
    sim::ServerOptions so;
    so.tls_cert_file = cert.cert_file;
    so.tls_key_file = cert.key_file;
    so.request_capture = 10;
    sim::Server server(so);
    server.start();
    Harness h(fast_options(server.base_url()), "sim-token");
    auto r = h.run(h.api.folder_tree());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, CallError::Kind::transport);
    EXPECT_EQ(r.error().transport_kind, http::ErrorKind::tls_verify);
    EXPECT_EQ(r.error().attempts, 1);  // not retried
    EXPECT_TRUE(server.captured_requests().empty());
}

}  // namespace
}  // namespace cdpsync::cdp
