// The CDP access token: where it comes from, and a type that keeps it out of logs.
//
// Sources, first configured wins: cdp.token_env, cdp.token_file, cdp.token_command (argv run
// without a shell; its stdout, trimmed, is the token), then $CREDENTIALS_DIRECTORY/token
// (systemd LoadCredential=). The token is re-read on demand (after an auth failure), never
// logged, never placed in an error message and never passed on a command line.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace cdpsync::config {

// Holds a secret. Has no stream operator and no implicit conversion: the only way to the
// characters is reveal(), which callers use exactly where the header is written.
class Secret {
public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}
    const std::string& reveal() const { return value_; }
    bool empty() const { return value_.empty(); }

private:
    std::string value_;
};

// Thrown when no token can be read; the message names the source, never the content.
class TokenError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class TokenSource {
public:
    explicit TokenSource(const CdpConfig& cdp);
    // Reads the token now from the configured source. Throws TokenError.
    Secret read() const;
    // Human description of the source ("environment variable CDP_TOKEN"), safe to log.
    std::string describe() const;
    // True when some source is configured (or a credential directory is present).
    bool configured() const;
    // How long token_command may run before it is killed (default 30 s).
    TokenSource& with_command_timeout(std::chrono::milliseconds timeout);

private:
    Secret read_now() const;

    std::string env_;
    std::string file_;
    std::vector<std::string> command_;
    std::chrono::milliseconds command_timeout_{30000};
};

}  // namespace cdpsync::config
