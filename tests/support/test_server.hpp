// A small HTTP/1.1 test server (Boost.Beast, own thread, 127.0.0.1, ephemeral port) for
// fault injection at the socket level: delays, silence, closing or resetting connections,
// closing idle keep-alive connections. It records every request as received, with its
// arrival time, and counts connections and concurrent requests. Plain HTTP or TLS.
//
// Usable by any area's tests: the handler decides per request, on the server's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before awaitable.hpp under GCC 12
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace cdpsync::testing {

enum class Action {
    respond,                // send the response (after `delay`)
    never_respond,          // keep the connection open and say nothing until the client leaves
    close_before_response,  // read the request, then close the connection without a byte
    reset_mid_response,     // send the status line, headers and part of the body, then RST
    raw,                    // write `body` byte for byte as the whole reply, then close
};

struct TestRequest {
    std::string method;
    std::string target;  // path and query exactly as sent
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    uint64_t connection_id = 0;    // 1, 2, ... in accept order
    int index_on_connection = 0;   // 0 for the first request on a connection
    std::chrono::steady_clock::time_point arrival;  // when the whole request had been read
    std::string tls_server_name;   // SNI the client sent (TLS only; "" if none)

    // The first header with this name (case-insensitive), if any.
    std::optional<std::string> header(const std::string& name) const;
};

struct TestResponse {
    unsigned status = 200;
    std::string body = "{}";
    std::vector<std::pair<std::string, std::string>> headers;  // Content-Type defaults to JSON
    std::chrono::milliseconds delay{0};
    Action action = Action::respond;
    bool keep_alive = true;  // false: "Connection: close" and close after the response
};

struct TestServerOptions {
    std::string cert_file;  // both set: serve HTTPS
    std::string key_file;
    // > 0: close a keep-alive connection that stays idle this long (as servers do).
    std::chrono::milliseconds close_idle_after{0};
};

// Shorthands: designated initializers that leave members out warn under GCC 12 -Wextra.
inline TestResponse reply(unsigned status = 200, std::string body = "{}") {
    TestResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}
inline TestResponse reply(Action action) {
    TestResponse r;
    r.action = action;
    return r;
}
inline TestResponse delayed(std::chrono::milliseconds delay) {
    TestResponse r;
    r.delay = delay;
    return r;
}
// `bytes` is written as the whole reply, then the connection is closed.
inline TestResponse raw_reply(std::string bytes) {
    TestResponse r;
    r.action = Action::raw;
    r.body = std::move(bytes);
    return r;
}
inline TestServerOptions tls_options(const std::string& cert_file, const std::string& key_file) {
    TestServerOptions o;
    o.cert_file = cert_file;
    o.key_file = key_file;
    return o;
}

class TestServer {
public:
    using Handler = std::function<TestResponse(const TestRequest&)>;

    // Binds 127.0.0.1 on an ephemeral port and starts serving on its own thread. Without a
    // handler every request gets 200 "{}".
    explicit TestServer(TestServerOptions options = {}, Handler handler = {});
    ~TestServer();  // stops
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    void set_handler(Handler handler);
    // Closes the listener and every connection, then joins the thread.
    void stop();

    uint16_t port() const;
    // "http(s)://HOST:PORT" + prefix; HOST defaults to 127.0.0.1.
    std::string base_url(const std::string& prefix = "", const std::string& host = "127.0.0.1") const;

    std::vector<TestRequest> requests() const;
    uint64_t connections_accepted() const;
    int max_concurrent_requests() const;  // most requests between read and reply at once

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Runs `task` on `ioc` until it and every other piece of work on `ioc` has finished, then
// returns its value or rethrows its exception.
// (Through a void coroutine: co_spawn's value handler needs a default-constructible T,
// which a cdp::Result is not.)
template <class T>
boost::asio::awaitable<void> store_result(boost::asio::awaitable<T> task, std::optional<T>& out) {
    T v = co_await std::move(task);
    out.emplace(std::move(v));
}

template <class T>
T run_until_done(boost::asio::io_context& ioc, boost::asio::awaitable<T> task) {
    std::optional<T> value;
    std::exception_ptr error;
    boost::asio::co_spawn(ioc, store_result(std::move(task), value), [&](std::exception_ptr e) { error = e; });
    ioc.restart();
    ioc.run();
    if (error) std::rethrow_exception(error);
    return std::move(*value);
}

inline void run_until_done(boost::asio::io_context& ioc, boost::asio::awaitable<void> task) {
    std::exception_ptr error;
    boost::asio::co_spawn(ioc, std::move(task), [&](std::exception_ptr e) { error = e; });
    ioc.restart();
    ioc.run();
    if (error) std::rethrow_exception(error);
}

}  // namespace cdpsync::testing
