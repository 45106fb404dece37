// A small synchronous HTTP/1.1 client for the simulator's tests: one keep-alive connection,
// plain or TLS, that reports transport failures (reset, truncated body) as values.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace cdpsync::sim::test {

struct Response {
    int status = 0;                            // 0: no complete response
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    std::string error;                         // transport or parse failure, "" when fine
    nlohmann::json json() const;               // throws when the body is not JSON
};

class Client {
public:
    // ca_file: for TLS, the certificate to trust; the host name "localhost" is verified.
    Client(uint16_t port, bool tls = false, std::string ca_file = "");
    ~Client();

    std::string token = "sim-token";
    bool send_token = true;

    Response get(const std::string& target);
    Response post(const std::string& target, const nlohmann::json& body);
    Response put(const std::string& target, const nlohmann::json& body);
    Response request(const std::string& method, const std::string& target, const std::string& body,
                     const std::string& content_type = "application/json");

    // The CDP envelope of a call under /openapi, asserting HTTP 200 and a JSON body.
    nlohmann::json cdp_get(const std::string& path_and_query);
    nlohmann::json cdp_post(const std::string& path, const nlohmann::json& body);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Sends a POST's headers with `Expect: 100-continue`, waits (up to 5 s) for the interim
// reply, then the body. Returns the interim status line ("" if none came) and the final status.
std::pair<std::string, int> post_expecting_continue(uint16_t port, const std::string& target,
                                                    const std::string& body);

}  // namespace cdpsync::sim::test
