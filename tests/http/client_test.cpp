#include "http/client.hpp"

#include <memory>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include "http/requests.hpp"
#include "support/test_server.hpp"

namespace cdpsync::http {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

using test::get;
using test::post;
using testing::Action;
using testing::TestRequest;
using testing::TestResponse;
using testing::TestServer;
using testing::TestServerOptions;
using testing::run_until_done;

ClientOptions options_for(const std::string& base_url) {
    ClientOptions o;
    o.base_url = base_url;
    o.rate_limit_qps = 0;
    o.timeout = 5s;
    return o;
}

Result send_one(Client& client, net::io_context& ioc, Request request) {
    return run_until_done(ioc, client.send(std::move(request)));
}

net::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    net::steady_timer timer(co_await net::this_coro::executor, d);
    co_await timer.async_wait(net::use_awaitable);
}

std::string describe(const Result& r) {
    if (r.has_value()) return "HTTP " + std::to_string(r.value().status);
    return std::string(to_string(r.error().kind)) + ": " + r.error().message;
}

// A port nothing listens on: bound once by us, then released.
uint16_t closed_port() {
    net::io_context ioc;
    net::ip::tcp::acceptor acceptor(ioc, {net::ip::make_address("127.0.0.1"), 0});
    return acceptor.local_endpoint().port();
}

TEST(ParseUrl, AcceptsHttpAndHttpsWithPortAndPrefix) {
    auto u = parse_url("https://cdp.example.com/openapi/");
    EXPECT_TRUE(u.tls);
    EXPECT_EQ(u.host, "cdp.example.com");
    EXPECT_EQ(u.port, "443");
    EXPECT_EQ(u.prefix, "/openapi");
    u = parse_url("http://127.0.0.1:8080");
    EXPECT_FALSE(u.tls);
    EXPECT_EQ(u.host, "127.0.0.1");
    EXPECT_EQ(u.port, "8080");
    EXPECT_EQ(u.prefix, "");
    u = parse_url("HTTPS://[::1]:8443/a/b");
    EXPECT_TRUE(u.tls);
    EXPECT_EQ(u.host, "::1");
    EXPECT_EQ(u.port, "8443");
    EXPECT_EQ(u.prefix, "/a/b");
}

TEST(ParseUrl, RejectsEverythingElse) {
    for (const char* bad : {"", "ftp://x", "cdp.example.com", "https://", "https://:443", "https://h:0",
                            "https://h:65536", "https://h:12a", "https://h:", "https://user@h", "https://h/p?q=1",
                            "https://[::1"})
        EXPECT_THROW(parse_url(bad), std::invalid_argument) << bad;
}

TEST(Client, SendsTheRequestShapeTheApiExpects) {
    TestServer server({}, [](const TestRequest&) {
        auto r = testing::reply(503, R"({"code":0})");
        r.headers = {{"Retry-After", "7"}};
        return r;
    });
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url("/openapi/")));
    auto request = post("/customer-group/simpleQuery", R"({"current":1})");
    request.query = {{"name", "a b&c=d"}, {"组", "x/y~z"}};
    request.headers = {{"token", "secret-token"}};
    auto r = send_one(client, ioc, request);
    ASSERT_TRUE(r.has_value()) << describe(r);
    EXPECT_EQ(r.value().status, 503u);
    EXPECT_EQ(r.value().body, R"({"code":0})");
    EXPECT_EQ(r.value().retry_after, "7");

    request = get("/customer-group/tree");
    request.headers = {{"token", "secret-token"}};
    r = send_one(client, ioc, request);
    ASSERT_TRUE(r.has_value()) << describe(r);

    auto requests = server.requests();
    ASSERT_EQ(requests.size(), 2u);
    const auto& post = requests[0];
    EXPECT_EQ(post.method, "POST");
    EXPECT_EQ(post.target, "/openapi/customer-group/simpleQuery?name=a%20b%26c%3Dd&%E7%BB%84=x%2Fy~z");
    EXPECT_EQ(post.header("Content-Type"), "application/json");
    EXPECT_EQ(post.header("Accept"), "application/json");
    EXPECT_EQ(post.header("token"), "secret-token");
    EXPECT_EQ(post.header("Host"), "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_EQ(post.header("User-Agent"), "cdp-sync/0.1");
    EXPECT_EQ(post.header("Content-Length"), "13");
    EXPECT_EQ(post.body, R"({"current":1})");
    const auto& tree = requests[1];
    EXPECT_EQ(tree.method, "GET");
    EXPECT_EQ(tree.target, "/openapi/customer-group/tree");
    EXPECT_EQ(tree.header("Content-Type"), "application/json");  // also on GET, as the API docs require
    EXPECT_EQ(tree.header("token"), "secret-token");
    EXPECT_EQ(tree.body, "");
}

TEST(Client, ReusesOneKeepAliveConnection) {
    TestServer server;
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    int ok = 0;
    run_until_done(ioc, [&]() -> net::awaitable<void> {
        for (int i = 0; i < 50; ++i)
            if ((co_await client.send(get("/x"))).has_value()) ++ok;
    }());
    EXPECT_EQ(ok, 50);
    EXPECT_EQ(client.stats().connections_opened, 1u);
    EXPECT_EQ(client.stats().requests_sent, 50u);
    EXPECT_EQ(server.connections_accepted(), 1u);
}

TEST(Client, HonoursMaxInFlight) {
    TestServer server({}, [](const TestRequest&) { return testing::delayed(50ms); });
    net::io_context ioc;
    auto options = options_for(server.base_url());
    options.max_in_flight = 3;
    Client client(ioc.get_executor(), options);
    int ok = 0;
    for (int i = 0; i < 15; ++i)
        net::co_spawn(ioc, [&]() -> net::awaitable<void> {
            if ((co_await client.send(get("/slow"))).has_value()) ++ok;
        }, net::detached);
    ioc.run();
    EXPECT_EQ(ok, 15);
    EXPECT_EQ(server.max_concurrent_requests(), 3);  // never more, and the client did use all 3
    EXPECT_LE(client.stats().connections_opened, 3u);
    EXPECT_LE(server.connections_accepted(), 3u);
}

TEST(Client, SilentServerTimesOut) {
    TestServer server({}, [](const TestRequest&) { return testing::reply(Action::never_respond); });
    net::io_context ioc;
    auto options = options_for(server.base_url());
    options.timeout = 200ms;
    Client client(ioc.get_executor(), options);
    const auto start = std::chrono::steady_clock::now();
    auto r = send_one(client, ioc, get("/x"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::timeout) << describe(r);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    EXPECT_EQ(client.stats().transport_errors, 1u);
}

TEST(Client, RefusedConnectionIsConnectError) {
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for("http://127.0.0.1:" + std::to_string(closed_port())));
    auto r = send_one(client, ioc, get("/x"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::connect) << describe(r);
    EXPECT_NE(r.error().message.find("127.0.0.1"), std::string::npos) << r.error().message;
}

TEST(Client, UnknownHostIsResolveError) {
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for("http://nonexistent.invalid:8080"));
    auto r = send_one(client, ioc, get("/x"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::resolve) << describe(r);
    EXPECT_NE(r.error().message.find("nonexistent.invalid"), std::string::npos) << r.error().message;
}

TEST(Client, ResetMidResponseIsConnectionReset) {
    TestServer server({}, [](const TestRequest&) { return testing::reply(Action::reset_mid_response); });
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    auto r = send_one(client, ioc, get("/x"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::connection_reset) << describe(r);
    EXPECT_EQ(server.requests().size(), 1u);  // a fresh connection's failure is not resent
}

TEST(Client, FreshConnectionClosedBeforeResponseIsNotResent) {
    TestServer server({}, [](const TestRequest&) { return testing::reply(Action::close_before_response); });
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    auto r = send_one(client, ioc, post("/x", "{}"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::connection_reset) << describe(r);
    EXPECT_EQ(server.requests().size(), 1u);
}

// The server closes a kept-alive connection just as the next request arrives on it (the
// race every keep-alive client meets): the client resends once on a new connection.
TEST(Client, ReusedConnectionClosedByServerIsResentOnANewOne) {
    TestServer server({}, [](const TestRequest& r) {
        return r.index_on_connection > 0 ? testing::reply(Action::close_before_response) : testing::reply();
    });
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    auto first = send_one(client, ioc, get("/one"));
    ASSERT_TRUE(first.has_value()) << describe(first);
    auto second = send_one(client, ioc, post("/two", "{}"));
    ASSERT_TRUE(second.has_value()) << describe(second);
    EXPECT_EQ(second.value().status, 200u);
    auto requests = server.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(requests[1].target, "/two");
    EXPECT_EQ(requests[1].connection_id, 1u);
    EXPECT_EQ(requests[2].target, "/two");
    EXPECT_EQ(requests[2].connection_id, 2u);
    EXPECT_EQ(client.stats().connections_opened, 2u);
    EXPECT_EQ(client.stats().transport_errors, 0u);
}

TEST(Client, ResendsOnlyOnce) {
    TestServer server;
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    ASSERT_TRUE(send_one(client, ioc, get("/one")).has_value());
    server.set_handler([](const TestRequest&) { return testing::reply(Action::close_before_response); });
    auto r = send_one(client, ioc, get("/two"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::connection_reset) << describe(r);
    EXPECT_EQ(server.requests().size(), 3u);  // /one, /two on the old connection, /two on a new one
}

TEST(Client, IdleConnectionClosedByServerIsReplaced) {
    TestServerOptions options;
    options.close_idle_after = 50ms;
    TestServer server(options);
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    ASSERT_TRUE(send_one(client, ioc, get("/one")).has_value());
    run_until_done(ioc, sleep_for(300ms));
    auto r = send_one(client, ioc, get("/two"));
    ASSERT_TRUE(r.has_value()) << describe(r);
    EXPECT_EQ(server.connections_accepted(), 2u);
    EXPECT_EQ(client.stats().connections_opened, 2u);
}

TEST(Client, ConnectionCloseResponseIsNotPooled) {
    TestServer server({}, [](const TestRequest&) {
        auto r = testing::reply();
        r.keep_alive = false;
        return r;
    });
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(send_one(client, ioc, get("/x")).has_value());
    EXPECT_EQ(client.stats().connections_opened, 3u);
    EXPECT_EQ(server.requests().size(), 3u);  // no resends: nothing stale was reused
}

TEST(Client, MalformedResponseIsProtocolError) {
    TestServer server({}, [](const TestRequest&) {
        return testing::raw_reply("HTTP/1.1 abc nonsense\r\n\r\n");
    });
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    auto r = send_one(client, ioc, get("/x"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::protocol) << describe(r);
}

TEST(Client, OversizedBodyIsProtocolError) {
    TestServer server({}, [](const TestRequest&) {
        return testing::raw_reply("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n{");
    });
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()));
    auto r = send_one(client, ioc, get("/x"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, ErrorKind::protocol) << describe(r);
    EXPECT_NE(r.error().message.find("64 MiB"), std::string::npos) << r.error().message;
}

// stop() while requests sit in every stage: on the wire (silent server), waiting for a
// slot, and waiting for the rate limiter. All finish as cancelled, nothing stays pending
// (ioc.run() returns), and later sends are cancelled at once.
TEST(Client, StopCancelsEveryPendingSend) {
    TestServer server({}, [](const TestRequest& r) {
        return r.target == "/fast" ? testing::reply() : testing::reply(Action::never_respond);
    });
    net::io_context ioc;
    auto options = options_for(server.base_url());
    options.max_in_flight = 2;
    Client client(ioc.get_executor(), options);
    int cancelled = 0, other = 0;
    auto send = [&](std::string path) -> net::awaitable<void> {
        auto r = co_await client.send(get(path));
        (!r.has_value() && r.error().kind == ErrorKind::cancelled ? cancelled : other)++;
    };
    for (int i = 0; i < 5; ++i) net::co_spawn(ioc, send("/silent"), net::detached);
    net::co_spawn(ioc, [&]() -> net::awaitable<void> {
        co_await sleep_for(200ms);
        EXPECT_EQ(server.requests().size(), 2u);  // two on the wire, three waiting for a slot
        client.stop();
    }, net::detached);
    const auto start = std::chrono::steady_clock::now();
    ioc.run();
    EXPECT_EQ(cancelled, 5);
    EXPECT_EQ(other, 0);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    auto after = send_one(client, ioc, get("/fast"));
    ASSERT_FALSE(after.has_value());
    EXPECT_EQ(after.error().kind, ErrorKind::cancelled);
}

TEST(Client, StopCancelsRateLimiterWaiters) {
    TestServer server;
    net::io_context ioc;
    auto options = options_for(server.base_url());
    options.rate_limit_qps = 1;
    Client client(ioc.get_executor(), options);
    int ok = 0, cancelled = 0;
    for (int i = 0; i < 3; ++i)
        net::co_spawn(ioc, [&]() -> net::awaitable<void> {
            auto r = co_await client.send(get("/x"));
            if (r.has_value()) ++ok;
            else if (r.error().kind == ErrorKind::cancelled) ++cancelled;
        }, net::detached);
    net::co_spawn(ioc, [&]() -> net::awaitable<void> {
        co_await sleep_for(200ms);
        client.stop();
    }, net::detached);
    const auto start = std::chrono::steady_clock::now();
    ioc.run();
    // Even the first send waits one spacing (1 s) from the client's start: all three were
    // waiting, and none sat out the limiter.
    EXPECT_EQ(ok, 0);
    EXPECT_EQ(cancelled, 3);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms);
    EXPECT_EQ(server.requests().size(), 0u);
}

// Destroying the client with sends in flight: they finish as cancelled, no coroutine is
// left behind, and (under ASan) nothing leaks or is used after free.
TEST(Client, DestructorCancelsInFlightSends) {
    TestServer server({}, [](const TestRequest&) { return testing::reply(Action::never_respond); });
    net::io_context ioc;
    auto client = std::make_unique<Client>(ioc.get_executor(), options_for(server.base_url()));
    int finished = 0, cancelled = 0;
    for (int i = 0; i < 4; ++i)
        net::co_spawn(ioc, [&, c = client.get()]() -> net::awaitable<void> {
            auto r = co_await c->send(get("/x"));
            ++finished;
            if (!r.has_value() && r.error().kind == ErrorKind::cancelled) ++cancelled;
        }, net::detached);
    net::co_spawn(ioc, [&]() -> net::awaitable<void> {
        co_await sleep_for(100ms);
        client.reset();
    }, net::detached);
    ioc.run();
    EXPECT_EQ(finished, 4);
    EXPECT_EQ(cancelled, 4);
}

TEST(Client, LogsNeitherHeadersNorBodies) {
    TestServer server({}, [](const TestRequest&) { return testing::reply(200, R"({"secret-body":1})"); });
    std::ostringstream out;
    auto log = std::make_shared<spdlog::logger>("http-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    log->set_level(spdlog::level::trace);
    net::io_context ioc;
    Client client(ioc.get_executor(), options_for(server.base_url()), log);
    auto request = post("/p", R"({"secret-request":1})");
    request.headers = {{"token", "secret-token"}};
    auto r = send_one(client, ioc, request);
    ASSERT_TRUE(r.has_value());
    const std::string text = out.str();
    EXPECT_NE(text.find("plain http"), std::string::npos) << text;  // the insecure warning, once
    EXPECT_EQ(text.find("plain http"), text.rfind("plain http"));
    EXPECT_NE(text.find("POST /p -> 200"), std::string::npos) << text;  // the debug line
    EXPECT_EQ(text.find("secret"), std::string::npos) << text;
}

TEST(Client, SetRateLimitChangesTheLimiterAtRunTime) {
    TestServer server;
    net::io_context ioc;
    auto options = options_for(server.base_url());
    options.rate_limit_qps = 1;
    Client client(ioc.get_executor(), options);
    client.set_rate_limit(0);  // off: 20 sends go at once
    const auto start = std::chrono::steady_clock::now();
    int ok = 0;
    run_until_done(ioc, [&]() -> net::awaitable<void> {
        for (int i = 0; i < 20; ++i)
            if ((co_await client.send(get("/x"))).has_value()) ++ok;
    }());
    EXPECT_EQ(ok, 20);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms);
}

}  // namespace
}  // namespace cdpsync::http
