// Fault injection for the simulator: seeded, so a given seed and request order always give
// the same faults. Rules apply globally or per endpoint (an endpoint's own rule replaces
// the global one); a script of forced faults ("the next 2 customerAddGroups calls get a
// reset") comes before any random draw.
//
// Where a fault strikes (docs/simulator.md):
//   before the call is applied: http_5xx, burst_429, transient_code, non_json_body
//   after the call is applied:  truncated_body, reset (the reply is lost, the write is not)
// Latency (fixed plus random spikes) is added before the call, to any outcome.
//
// Config keys (JSON, or YAML with the same shape):
//   {"seed": 42,
//    "global":    {RULE},
//    "endpoints": {"customerAddGroups": {RULE}, "group/add": {RULE}, ...},
//    "script":    [{"endpoint": "customerAddGroups", "kind": "reset", "count": 1}]}
//   RULE: error_5xx_probability, error_5xx_codes [500,502,503], burst_429_probability,
//         burst_429_length, retry_after_s, latency_ms, spike_probability, spike_ms,
//         reset_probability, truncated_body_probability, non_json_body_probability,
//         transient_code_probability, transient_msg ("系统繁忙")
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace cdpsync::sim {

enum class FaultKind {
    none,
    http_5xx,        // an HTTP 500/502/503 with an error page
    burst_429,       // HTTP 429 with Retry-After, for burst_429_length calls in a row
    transient_code,  // HTTP 200, {"code": -1, "msg": "系统繁忙"}
    non_json_body,   // HTTP 200 with an HTML body
    truncated_body,  // Content-Length promises more than is sent, then the socket closes
    reset,           // part of the reply is sent, then the connection is reset (RST)
};
const char* to_string(FaultKind kind);
// Throws std::invalid_argument for an unknown name.
FaultKind parse_fault_kind(std::string_view name);

struct FaultRule {
    double error_5xx_probability = 0;
    std::vector<int> error_5xx_codes{500, 502, 503};
    double burst_429_probability = 0;
    int burst_429_length = 3;
    int retry_after_s = 1;
    int latency_ms = 0;
    double spike_probability = 0;
    int spike_ms = 0;
    double reset_probability = 0;
    double truncated_body_probability = 0;
    double non_json_body_probability = 0;
    double transient_code_probability = 0;
    std::string transient_msg = "系统繁忙";
};

// A fault forced on the next `count` calls to `endpoint` ("*" = any CDP endpoint).
struct ScriptedFault {
    std::string endpoint = "*";
    FaultKind kind = FaultKind::http_5xx;
    int count = 1;
    int http_status = 0;   // http_5xx: default 503; burst_429: 429
    std::string msg;       // transient_code: default "系统繁忙"
    int delay_ms = 0;      // extra latency for these calls
};

struct FaultConfig {
    FaultRule global;
    std::map<std::string, FaultRule> endpoints;  // key: "customerAddGroups" or "group/add"
    std::optional<uint64_t> seed;
    std::vector<ScriptedFault> script;

    // Throws std::invalid_argument naming the bad key or value.
    static FaultConfig from_json(const nlohmann::json& j);
    static FaultConfig from_yaml(const std::string& text);
    static FaultConfig from_yaml_file(const std::string& path);
    nlohmann::json to_json() const;
};

nlohmann::json to_json(const FaultRule& r);
FaultRule rule_from_json(const nlohmann::json& j, const FaultRule& base = {});
ScriptedFault scripted_fault_from_json(const nlohmann::json& j);

struct FaultDecision {
    FaultKind kind = FaultKind::none;
    int http_status = 0;                 // http_5xx, burst_429
    int retry_after_s = 0;               // burst_429
    std::string msg;                     // transient_code
    std::chrono::milliseconds delay{0};  // added latency
};

class Faults {
public:
    explicit Faults(FaultConfig config = {}, uint64_t seed = 1);

    // Replaces the rules and the script; reseeds when config.seed is set.
    void configure(FaultConfig config);
    FaultConfig config() const;
    void reseed(uint64_t seed);
    void push_script(ScriptedFault fault);
    void clear();  // no rules, no script, no burst in progress

    // endpoint: the path under the prefix without its leading slash,
    // e.g. "customer-group-ref/customerAddGroups".
    FaultDecision decide(const std::string& endpoint);

    nlohmann::json to_json() const;  // the config plus the remaining script

private:
    const FaultRule* rule_for(const std::string& endpoint, std::string& key) const;

    mutable std::mutex mutex_;
    FaultConfig config_;
    std::deque<ScriptedFault> script_;
    std::mt19937_64 rng_;
    std::map<std::string, int> burst_left_;
};

}  // namespace cdpsync::sim
