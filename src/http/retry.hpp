// Retry policy: which outcomes are transient, and how long to wait before the next attempt
// (exponential backoff with full jitter, or the server's Retry-After when it says more).
#pragma once

#include <chrono>
#include <optional>
#include <random>
#include <string>

#include "http/client.hpp"

namespace cdpsync::http {

struct RetryOptions {
    int max_attempts = 6;
    std::chrono::milliseconds base_delay{200};
    std::chrono::milliseconds max_delay{30000};
};

// Why a transport-level outcome should be retried ("HTTP 503", "timeout", ...), or nullopt
// when it is final (a 2xx, or a 4xx other than 408/429, or a TLS verification failure).
std::optional<std::string> transient_reason(const Result& result);

// Retry-After as a delay: delta-seconds or an HTTP-date (RFC 7231) relative to `now`.
// nullopt when absent or unparseable; a date in the past gives zero.
std::optional<std::chrono::milliseconds> parse_retry_after(
    const std::string& value,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The longest Retry-After honoured (when it exceeds retry.max_delay_ms): a server asking for
// more gets this much, and the call then fails if still refused.
inline constexpr std::chrono::milliseconds kMaxRetryAfter{5 * 60 * 1000};

class Backoff {
public:
    explicit Backoff(RetryOptions options, uint64_t seed = std::random_device{}());
    // Delay before attempt `attempt + 1` after `attempt` (1-based) failed: uniform in
    // [0, min(max_delay, base * 2^(attempt-1))], but at least retry_after when given
    // (capped at max(max_delay, kMaxRetryAfter)).
    std::chrono::milliseconds delay(int attempt,
                                    std::optional<std::chrono::milliseconds> retry_after = {});
    const RetryOptions& options() const { return options_; }

private:
    RetryOptions options_;
    std::mt19937_64 rng_;
};

}  // namespace cdpsync::http
