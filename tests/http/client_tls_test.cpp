// HTTPS: verification is always on. Certificates come from a throwaway test CA.
#include "http/client.hpp"

#include <thread>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "http/requests.hpp"
#include "support/test_server.hpp"
#include "support/tls_certs.hpp"

namespace cdpsync::http {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

using test::get;
using testing::TestPki;
using testing::TestServer;
using testing::TestServerOptions;

std::string describe(const Result& r) {
    if (r.has_value()) return "HTTP " + std::to_string(r.value().status);
    return std::string(to_string(r.error().kind)) + ": " + r.error().message;
}

class ClientTls : public ::testing::Test {
protected:
    Result send_to(const std::string& base_url, const std::string& ca_file, int count = 1) {
        ClientOptions options;
        options.base_url = base_url;
        options.ca_file = ca_file;
        options.rate_limit_qps = 0;
        options.timeout = 5s;
        Client client(ioc.get_executor(), options);
        Result last = testing::run_until_done(ioc, client.send(get("/x")));
        for (int i = 1; i < count; ++i) last = testing::run_until_done(ioc, client.send(get("/x")));
        connections = client.stats().connections_opened;
        return last;
    }

    TestPki pki;
    net::io_context ioc;
    uint64_t connections = 0;
};

TEST_F(ClientTls, CertificateFromTrustedCaForLocalhostSucceeds) {
    auto cert = pki.issue("localhost", {"localhost"}, {"127.0.0.1"});
    TestServer server(testing::tls_options(cert.cert_file, cert.key_file));
    auto r = send_to(server.base_url("/openapi", "localhost"), pki.ca_file(), 3);
    ASSERT_TRUE(r.has_value()) << describe(r);
    EXPECT_EQ(r.value().status, 200u);
    EXPECT_EQ(connections, 1u);  // keep-alive works over TLS too
    ASSERT_EQ(server.requests().size(), 3u);
    EXPECT_EQ(server.requests()[0].target, "/openapi/x");
    EXPECT_EQ(server.requests()[0].header("Host"), "localhost:" + std::to_string(server.port()));
    EXPECT_EQ(server.requests()[0].tls_server_name, "localhost");  // SNI
}

TEST_F(ClientTls, CertificateFromTrustedCaForIpLiteralSucceeds) {
    auto cert = pki.issue("loopback-ip", {}, {"127.0.0.1"});
    TestServer server(testing::tls_options(cert.cert_file, cert.key_file));
    auto r = send_to(server.base_url("", "127.0.0.1"), pki.ca_file());
    ASSERT_TRUE(r.has_value()) << describe(r);
    ASSERT_EQ(server.requests().size(), 1u);
    EXPECT_EQ(server.requests()[0].tls_server_name, "");  // no SNI for an IP literal (RFC 6066)
}

TEST_F(ClientTls, UntrustedSelfSignedCertificateIsRejected) {
    auto cert = pki.self_signed("localhost-self", {"localhost"}, {"127.0.0.1"});
    TestServer server(testing::tls_options(cert.cert_file, cert.key_file));
    auto r = send_to(server.base_url("", "localhost"), "");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::tls_verify) << describe(r);
    EXPECT_NE(r.error().message.find("self-signed"), std::string::npos) << r.error().message;
    EXPECT_TRUE(server.requests().empty());
}

TEST_F(ClientTls, CertificateForAnotherHostIsRejectedEvenFromATrustedCa) {
    auto cert = pki.issue("elsewhere", {"cdp.elsewhere.example"}, {"10.9.8.7"});
    TestServer server(testing::tls_options(cert.cert_file, cert.key_file));
    auto r = send_to(server.base_url("", "localhost"), pki.ca_file());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::tls_verify) << describe(r);
    EXPECT_NE(r.error().message.find("not valid for localhost"), std::string::npos) << r.error().message;
    EXPECT_TRUE(server.requests().empty());
}

TEST_F(ClientTls, CertificateForAnotherIpIsRejected) {
    auto cert = pki.issue("elsewhere-ip", {"localhost"}, {"10.9.8.7"});
    TestServer server(testing::tls_options(cert.cert_file, cert.key_file));
    auto r = send_to(server.base_url("", "127.0.0.1"), pki.ca_file());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::tls_verify) << describe(r);
    EXPECT_NE(r.error().message.find("not valid for 127.0.0.1"), std::string::npos) << r.error().message;
}

TEST_F(ClientTls, IdleConnectionClosedByServerIsReplaced) {
    auto cert = pki.issue("localhost-idle", {"localhost"}, {});
    auto options = testing::tls_options(cert.cert_file, cert.key_file);
    options.close_idle_after = 50ms;
    TestServer server(options);
    ClientOptions client_options;
    client_options.base_url = server.base_url("", "localhost");
    client_options.ca_file = pki.ca_file();
    client_options.rate_limit_qps = 0;
    Client client(ioc.get_executor(), client_options);
    auto first = testing::run_until_done(ioc, client.send(get("/one")));
    ASSERT_TRUE(first.has_value()) << describe(first);
    std::this_thread::sleep_for(300ms);
    auto second = testing::run_until_done(ioc, client.send(get("/two")));
    ASSERT_TRUE(second.has_value()) << describe(second);
    EXPECT_EQ(client.stats().connections_opened, 2u);
    EXPECT_EQ(server.requests().size(), 2u);
}

TEST_F(ClientTls, MissingCaFileFailsAtConstruction) {
    ClientOptions options;
    options.base_url = "https://localhost:1";
    options.ca_file = pki.dir() + "/no-such-ca.pem";
    EXPECT_THROW(Client(ioc.get_executor(), options), std::runtime_error);
}

}  // namespace
}  // namespace cdpsync::http
