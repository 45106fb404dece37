// cdp-sync-sim: an in-memory stand-in for the CDP open API, with fault injection and an
// admin API under /__sim/. Used by tests in-process (Server on its own threads) and as the
// cdp-sync-sim executable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/faults.hpp"
#include "sim/state.hpp"

namespace spdlog {
class logger;
}

namespace cdpsync::sim {

enum class AuthFailure { http_401, code_minus_1 };

struct ServerOptions {
    std::string address = "127.0.0.1";
    uint16_t port = 0;                  // 0: an ephemeral port, see Server::port()
    std::string prefix = "/openapi";    // CDP endpoints live under it; admin under /__sim/
    std::string token = "sim-token";    // the `token` header every CDP call must carry
    AuthFailure auth_failure = AuthFailure::http_401;
    double rate_limit_qps = 0;          // <= 0: off. Excess requests get 429 + Retry-After
    int64_t max_page_size = 1000;       // larger `size` requests get this many records
    std::string tls_cert_file;          // both set: serve HTTPS
    std::string tls_key_file;
    int threads = 1;
    FaultConfig faults;
    Quirks quirks;                      // all off by default (sim/quirks.hpp)
    uint64_t seed = 1;
    size_t request_capture = 0;         // keep the last N requests for tests (0: off)
    std::shared_ptr<spdlog::logger> logger;  // null: spdlog's default logger
    int idle_timeout_s = 300;           // an idle keep-alive connection is closed after this
    bool longs_as_strings = false;      // reply ids, totals and paging numbers as JSON strings
};

// One request as received, for tests that check request shape.
struct CapturedRequest {
    std::string method;
    std::string target;                 // path and query as sent
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

class Server {
public:
    explicit Server(ServerOptions options);
    ~Server();  // stops
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    void start();   // binds and runs on options.threads background threads
    void stop();    // closes the listener and every connection, joins the threads
    uint16_t port() const;
    std::string base_url() const;   // "http(s)://127.0.0.1:PORT/openapi"

    State& state();                 // thread-safe
    Faults& faults();               // thread-safe
    nlohmann::json stats() const;   // as GET /__sim/stats
    std::vector<CapturedRequest> captured_requests() const;
    void set_rate_limit(double qps);

    // Additions beyond the first contract.
    std::string root_url() const;   // "http(s)://127.0.0.1:PORT" (the admin API is under /__sim/)
    void reset_stats();             // as POST /__sim/stats/reset (also clears the write log)
    double rate_limit() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cdpsync::sim
