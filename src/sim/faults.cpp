#include "sim/faults.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

namespace cdpsync::sim {

using json = nlohmann::json;

namespace {

struct KindName {
    FaultKind kind;
    const char* name;
};
constexpr KindName kKindNames[] = {
    {FaultKind::none, "none"},
    {FaultKind::http_5xx, "http_5xx"},
    {FaultKind::burst_429, "burst_429"},
    {FaultKind::transient_code, "transient_code"},
    {FaultKind::non_json_body, "non_json_body"},
    {FaultKind::truncated_body, "truncated_body"},
    {FaultKind::reset, "reset"},
};

double probability(const json& j, const char* key) {
    if (!j.is_number()) throw std::invalid_argument(std::string("faults: ") + key + " must be a number");
    double p = j.get<double>();
    if (p < 0 || p > 1) throw std::invalid_argument(std::string("faults: ") + key + " must be within 0..1");
    return p;
}

int non_negative(const json& j, const char* key) {
    if (!j.is_number_integer() || j.get<int64_t>() < 0 || j.get<int64_t>() > 3600 * 1000)
        throw std::invalid_argument(std::string("faults: ") + key + " must be a non-negative integer");
    return j.get<int>();
}

// YAML scalars become JSON numbers, booleans or strings by their look.
json yaml_to_json(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
        return nullptr;
    case YAML::NodeType::Sequence: {
        json out = json::array();
        for (const auto& item : node) out.push_back(yaml_to_json(item));
        return out;
    }
    case YAML::NodeType::Map: {
        json out = json::object();
        for (const auto& kv : node) out[kv.first.as<std::string>()] = yaml_to_json(kv.second);
        return out;
    }
    case YAML::NodeType::Scalar:
        break;
    }
    const std::string s = node.Scalar();
    if (node.Tag() == "!") return s;  // quoted
    int64_t i;
    if (YAML::convert<int64_t>::decode(node, i)) return i;
    double d;
    if (YAML::convert<double>::decode(node, d)) return d;
    bool b;
    if (YAML::convert<bool>::decode(node, b)) return b;
    return s;
}

}  // namespace

const char* to_string(FaultKind kind) {
    for (const auto& kn : kKindNames)
        if (kn.kind == kind) return kn.name;
    return "none";
}

FaultKind parse_fault_kind(std::string_view name) {
    for (const auto& kn : kKindNames)
        if (name == kn.name) return kn.kind;
    throw std::invalid_argument("faults: unknown fault kind '" + std::string(name) + "'");
}

json to_json(const FaultRule& r) {
    return json{{"error_5xx_probability", r.error_5xx_probability},
                {"error_5xx_codes", r.error_5xx_codes},
                {"burst_429_probability", r.burst_429_probability},
                {"burst_429_length", r.burst_429_length},
                {"retry_after_s", r.retry_after_s},
                {"latency_ms", r.latency_ms},
                {"spike_probability", r.spike_probability},
                {"spike_ms", r.spike_ms},
                {"reset_probability", r.reset_probability},
                {"truncated_body_probability", r.truncated_body_probability},
                {"non_json_body_probability", r.non_json_body_probability},
                {"transient_code_probability", r.transient_code_probability},
                {"transient_msg", r.transient_msg}};
}

FaultRule rule_from_json(const json& j, const FaultRule& base) {
    if (!j.is_object()) throw std::invalid_argument("faults: a rule must be an object");
    FaultRule r = base;
    for (const auto& [key, v] : j.items()) {
        const char* k = key.c_str();
        if (key == "error_5xx_probability") r.error_5xx_probability = probability(v, k);
        else if (key == "error_5xx_codes") {
            if (!v.is_array() || v.empty()) throw std::invalid_argument("faults: error_5xx_codes must be a non-empty array");
            r.error_5xx_codes.clear();
            for (const auto& c : v) {
                if (!c.is_number_integer() || c.get<int>() < 500 || c.get<int>() > 599)
                    throw std::invalid_argument("faults: error_5xx_codes holds a non-5xx code");
                r.error_5xx_codes.push_back(c.get<int>());
            }
        } else if (key == "burst_429_probability") r.burst_429_probability = probability(v, k);
        else if (key == "burst_429_length") r.burst_429_length = std::max(1, non_negative(v, k));
        else if (key == "retry_after_s") r.retry_after_s = non_negative(v, k);
        else if (key == "latency_ms") r.latency_ms = non_negative(v, k);
        else if (key == "spike_probability") r.spike_probability = probability(v, k);
        else if (key == "spike_ms") r.spike_ms = non_negative(v, k);
        else if (key == "reset_probability") r.reset_probability = probability(v, k);
        else if (key == "truncated_body_probability") r.truncated_body_probability = probability(v, k);
        else if (key == "non_json_body_probability") r.non_json_body_probability = probability(v, k);
        else if (key == "transient_code_probability") r.transient_code_probability = probability(v, k);
        else if (key == "transient_msg") {
            if (!v.is_string()) throw std::invalid_argument("faults: transient_msg must be a string");
            r.transient_msg = v.get<std::string>();
        } else throw std::invalid_argument("faults: unknown key '" + key + "'");
    }
    return r;
}

ScriptedFault scripted_fault_from_json(const json& j) {
    if (!j.is_object()) throw std::invalid_argument("faults: a script entry must be an object");
    ScriptedFault f;
    for (const auto& [key, v] : j.items()) {
        if (key == "endpoint" && v.is_string()) f.endpoint = v.get<std::string>();
        else if (key == "kind" && v.is_string()) f.kind = parse_fault_kind(v.get<std::string>());
        else if (key == "count") f.count = std::max(1, non_negative(v, "count"));
        else if (key == "http_status") f.http_status = non_negative(v, "http_status");
        else if (key == "msg" && v.is_string()) f.msg = v.get<std::string>();
        else if (key == "delay_ms") f.delay_ms = non_negative(v, "delay_ms");
        else throw std::invalid_argument("faults: bad script key '" + key + "'");
    }
    if (f.kind == FaultKind::none && f.delay_ms == 0)
        throw std::invalid_argument("faults: a script entry needs a kind or a delay_ms");
    return f;
}

FaultConfig FaultConfig::from_json(const json& j) {
    if (!j.is_object()) throw std::invalid_argument("faults: the config must be an object");
    FaultConfig c;
    for (const auto& [key, v] : j.items()) {
        if (key == "seed") {
            if (v.is_null()) continue;
            if (!v.is_number_integer()) throw std::invalid_argument("faults: seed must be an integer");
            c.seed = v.get<uint64_t>();
        } else if (key == "global") {
            c.global = rule_from_json(v);
        } else if (key == "endpoints") {
            if (!v.is_object()) throw std::invalid_argument("faults: endpoints must be an object");
            for (const auto& [name, rule] : v.items()) {
                c.endpoints[name.starts_with('/') ? name.substr(1) : name] = rule_from_json(rule);
            }
        } else if (key == "script") {
            if (!v.is_array()) throw std::invalid_argument("faults: script must be an array");
            for (const auto& s : v) c.script.push_back(scripted_fault_from_json(s));
        } else {
            throw std::invalid_argument("faults: unknown key '" + key + "'");
        }
    }
    return c;
}

FaultConfig FaultConfig::from_yaml(const std::string& text) {
    YAML::Node node;
    try {
        node = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        throw std::invalid_argument(std::string("faults: bad YAML: ") + e.what());
    }
    if (node.IsNull()) return {};
    return from_json(yaml_to_json(node));
}

FaultConfig FaultConfig::from_yaml_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument("faults: cannot read " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return from_yaml(text.str());
}

json FaultConfig::to_json() const {
    json eps = json::object();
    for (const auto& [name, rule] : endpoints) eps[name] = sim::to_json(rule);
    json scr = json::array();
    for (const auto& s : script)
        scr.push_back(json{{"endpoint", s.endpoint}, {"kind", sim::to_string(s.kind)},
                           {"count", s.count}, {"http_status", s.http_status},
                           {"msg", s.msg}, {"delay_ms", s.delay_ms}});
    json j{{"global", sim::to_json(global)}, {"endpoints", std::move(eps)}, {"script", std::move(scr)}};
    j["seed"] = seed ? json(*seed) : json(nullptr);
    return j;
}

namespace {
std::string strip_slash(const std::string& s) { return s.starts_with('/') ? s.substr(1) : s; }
FaultConfig normalized(FaultConfig c) {
    std::map<std::string, FaultRule> eps;
    for (auto& [k, v] : c.endpoints) eps[strip_slash(k)] = std::move(v);
    c.endpoints = std::move(eps);
    for (auto& s : c.script) s.endpoint = strip_slash(s.endpoint);
    return c;
}
}  // namespace

Faults::Faults(FaultConfig config, uint64_t seed) : rng_(config.seed.value_or(seed)) {
    config = normalized(std::move(config));
    for (auto& s : config.script) script_.push_back(std::move(s));
    config.script.clear();
    config_ = std::move(config);
}


void Faults::configure(FaultConfig config) {
    config = normalized(std::move(config));
    std::lock_guard lock(mutex_);
    if (config.seed) rng_.seed(*config.seed);
    script_.assign(config.script.begin(), config.script.end());
    config.script.clear();
    config_ = std::move(config);
    burst_left_.clear();
}

FaultConfig Faults::config() const {
    std::lock_guard lock(mutex_);
    FaultConfig c = config_;
    c.script.assign(script_.begin(), script_.end());
    return c;
}

void Faults::reseed(uint64_t seed) {
    std::lock_guard lock(mutex_);
    rng_.seed(seed);
    burst_left_.clear();
}

void Faults::push_script(ScriptedFault fault) {
    fault.endpoint = strip_slash(fault.endpoint);
    std::lock_guard lock(mutex_);
    script_.push_back(std::move(fault));
}

void Faults::clear() {
    std::lock_guard lock(mutex_);
    config_ = FaultConfig{};
    script_.clear();
    burst_left_.clear();
}

json Faults::to_json() const { return config().to_json(); }

const FaultRule* Faults::rule_for(const std::string& endpoint, std::string& key) const {
    if (auto it = config_.endpoints.find(endpoint); it != config_.endpoints.end()) {
        key = endpoint;
        return &it->second;
    }
    const auto slash = endpoint.rfind('/');
    const std::string last = slash == std::string::npos ? endpoint : endpoint.substr(slash + 1);
    if (auto it = config_.endpoints.find(last); it != config_.endpoints.end()) {
        key = endpoint;
        return &it->second;
    }
    key = "*";
    return &config_.global;
}

namespace {

// The decision a scripted fault makes, with its defaults filled in.
FaultDecision scripted_decision(const ScriptedFault& f) {
    FaultDecision d;
    d.kind = f.kind;
    d.delay = std::chrono::milliseconds(f.delay_ms);
    if (d.kind == FaultKind::http_5xx) d.http_status = f.http_status ? f.http_status : 503;
    if (d.kind == FaultKind::burst_429) {
        d.http_status = 429;
        d.retry_after_s = 1;
    }
    if (d.kind == FaultKind::transient_code) d.msg = f.msg.empty() ? "系统繁忙" : f.msg;
    return d;
}

// The fault (or none) a draw `pick` in [0, 1) lands on among the rule's probabilities, laid
// end to end; `which` picks the 5xx status.
void drawn_fault(const FaultRule& r, double pick, uint64_t which, FaultDecision& d) {
    double edge = 0;
    auto hit = [&](double p) {
        edge += p;
        return pick < edge;
    };
    if (hit(r.reset_probability)) {
        d.kind = FaultKind::reset;
    } else if (hit(r.truncated_body_probability)) {
        d.kind = FaultKind::truncated_body;
    } else if (hit(r.non_json_body_probability)) {
        d.kind = FaultKind::non_json_body;
    } else if (hit(r.error_5xx_probability)) {
        d.kind = FaultKind::http_5xx;
        d.http_status = r.error_5xx_codes.empty() ? 500 : r.error_5xx_codes[which % r.error_5xx_codes.size()];
    } else if (hit(r.burst_429_probability)) {
        d.kind = FaultKind::burst_429;
        d.http_status = 429;
        d.retry_after_s = r.retry_after_s;
    } else if (hit(r.transient_code_probability)) {
        d.kind = FaultKind::transient_code;
        d.msg = r.transient_msg;
    }
}

}  // namespace

FaultDecision Faults::decide(const std::string& endpoint) {
    std::lock_guard lock(mutex_);
    // A scripted fault first: the first entry for this endpoint (or for any).
    for (auto it = script_.begin(); it != script_.end(); ++it) {
        if (it->endpoint != "*" && it->endpoint != endpoint &&
            endpoint.substr(endpoint.rfind('/') + 1) != it->endpoint)
            continue;
        const FaultDecision d = scripted_decision(*it);
        if (--it->count <= 0) script_.erase(it);
        return d;
    }

    std::string key;
    const FaultRule& r = *rule_for(endpoint, key);
    // Always three draws, so the sequence depends only on the seed and the request order.
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const double spike = unit(rng_);
    const double pick = unit(rng_);
    const uint64_t which = rng_();

    FaultDecision d;
    d.delay = std::chrono::milliseconds(r.latency_ms + (spike < r.spike_probability ? r.spike_ms : 0));
    if (int& left = burst_left_[key]; left > 0) {
        --left;
        d.kind = FaultKind::burst_429;
        d.http_status = 429;
        d.retry_after_s = r.retry_after_s;
        return d;
    }
    drawn_fault(r, pick, which, d);
    if (d.kind == FaultKind::burst_429) burst_left_[key] = r.burst_429_length - 1;
    return d;
}

}  // namespace cdpsync::sim
