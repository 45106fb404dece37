// HTTP/1.1 client over TCP or TLS with keep-alive pooling, a shared rate limiter and
// per-attempt timeouts. It knows nothing about the CDP: retry decisions that need the body
// are made by the caller (cdp::Api) with the helpers in http/retry.hpp.
//
// Options
// | field          | meaning                                                           |
// |----------------|-------------------------------------------------------------------|
// | base_url       | http://host[:port]/prefix or https://...; requests append a path |
// | ca_file        | extra PEM bundle trusted on top of the system store               |
// | max_in_flight  | most requests (and so connections) at once                        |
// | rate_limit_qps | no 1-second window holds more sends than this; <= 0 disables it   |
// | timeout        | per attempt: connect + TLS + write + read                         |
// | rate_limit_margin | added to the 1 s window; sends are (1 s + margin) / qps apart,  |
// |                |   counted from when the previous one left (see rate_limiter.hpp)  |
//
// Threading: one io_context thread. All members must be used from the client's executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before awaitable.hpp under GCC 12
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/outcome/policy/terminate.hpp>
#include <boost/outcome/result.hpp>
#include <spdlog/logger.h>

namespace cdpsync::http {

namespace net = boost::asio;

enum class Method { get, post };

struct Header {
    std::string name;
    std::string value;
};

struct Request {
    Method method = Method::get;
    std::string path;                 // appended to the base URL's prefix, e.g. "/customer-group/simpleQuery"
    std::vector<std::pair<std::string, std::string>> query;  // percent-encoded by the client
    std::string body;                 // sent with Content-Type: application/json
    std::vector<Header> headers;      // extra headers (the caller adds the token here)
};

struct Response {
    unsigned status = 0;
    std::string body;
    std::optional<std::string> retry_after;  // raw Retry-After header, if any
    std::chrono::steady_clock::time_point sent_at;  // when the request's write completed
};

enum class ErrorKind {
    resolve,          // DNS failure
    connect,          // refused / unreachable
    tls_handshake,    // handshake failed for a reason other than verification
    tls_verify,       // certificate chain or host name not trusted
    timeout,          // the attempt's deadline passed
    connection_reset, // peer closed or reset the connection mid-exchange
    protocol,         // unparseable HTTP
    cancelled,        // the client was stopped
};

const char* to_string(ErrorKind kind);

struct TransportError {
    ErrorKind kind;
    std::string message;  // human detail; never contains headers or bodies
};

namespace outcome = boost::outcome_v2;

// One attempt's outcome: the response (any status), or why none came.
using Result = outcome::result<Response, TransportError, outcome::policy::terminate>;

struct ClientOptions {
    std::string base_url;
    std::string ca_file;
    int max_in_flight = 8;
    double rate_limit_qps = 10;
    std::chrono::milliseconds timeout{10000};
    std::string user_agent = "cdp-sync/0.1";
    // Arrival times at the server vary by network jitter and by the server's own
    // scheduling; 8 ms absorbs 7 ms of it (see rate_limiter.hpp) and costs 0.8% of the rate.
    std::chrono::milliseconds rate_limit_margin{8};
};

struct ClientStats {
    uint64_t requests_sent = 0;
    uint64_t connections_opened = 0;
    uint64_t transport_errors = 0;
};

// Parsed base URL.
struct Url {
    bool tls = false;
    std::string host;
    std::string port;
    std::string prefix;  // no trailing slash
};
// Throws std::invalid_argument for anything but http(s)://host[:port][/prefix].
Url parse_url(const std::string& url);

class Client {
public:
    Client(net::any_io_executor executor, ClientOptions options,
           std::shared_ptr<spdlog::logger> log = nullptr);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // One attempt: waits for a free slot and a rate-limit token, then sends on a pooled
    // connection (reconnecting once, without counting, if a reused idle connection turns
    // out to be closed). Never throws for network trouble: see Result.
    net::awaitable<Result> send(Request request);

    // Cancels waiters, timers and connections; pending and later sends finish with
    // ErrorKind::cancelled.
    void stop();

    void set_rate_limit(double qps);
    const ClientOptions& options() const;
    ClientStats stats() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace cdpsync::http
