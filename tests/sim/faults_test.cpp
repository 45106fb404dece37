// Fault rules: parsing, determinism, per-endpoint rules, bursts and the script.
#include <gtest/gtest.h>

#include "sim/faults.hpp"

namespace cdpsync::sim {
namespace {

const std::string kAdd = "customer-group-ref/customerAddGroups";
const std::string kQuery = "customer-group/simpleQuery";

std::vector<FaultKind> sequence(Faults& f, int n, const std::string& ep = kAdd) {
    std::vector<FaultKind> out;
    for (int i = 0; i < n; ++i) out.push_back(f.decide(ep).kind);
    return out;
}

FaultConfig mixed() {
    FaultConfig c;
    c.global.error_5xx_probability = 0.2;
    c.global.reset_probability = 0.1;
    c.global.transient_code_probability = 0.1;
    c.global.truncated_body_probability = 0.1;
    return c;
}

TEST(SimFaults, NoRulesNoFaults) {
    Faults f;
    for (auto k : sequence(f, 1000)) EXPECT_EQ(k, FaultKind::none);
    EXPECT_EQ(f.decide(kAdd).delay.count(), 0);
}

TEST(SimFaults, SameSeedSameSequenceOtherSeedOtherSequence) {
    Faults a(mixed(), 42), b(mixed(), 42), c(mixed(), 43);
    auto sa = sequence(a, 500), sb = sequence(b, 500), sc = sequence(c, 500);
    EXPECT_EQ(sa, sb);
    EXPECT_NE(sa, sc);
    const auto faulted = std::count_if(sa.begin(), sa.end(), [](FaultKind k) { return k != FaultKind::none; });
    EXPECT_GT(faulted, 150);  // 50% expected
    EXPECT_LT(faulted, 350);
    a.reseed(42);
    EXPECT_EQ(sequence(a, 500), sb) << "reseeding restarts the sequence";
}

TEST(SimFaults, EachKindAtProbabilityOne) {
    struct Case {
        FaultKind kind;
        double FaultRule::*field;
    } cases[] = {
        {FaultKind::http_5xx, &FaultRule::error_5xx_probability},
        {FaultKind::burst_429, &FaultRule::burst_429_probability},
        {FaultKind::transient_code, &FaultRule::transient_code_probability},
        {FaultKind::non_json_body, &FaultRule::non_json_body_probability},
        {FaultKind::truncated_body, &FaultRule::truncated_body_probability},
        {FaultKind::reset, &FaultRule::reset_probability},
    };
    for (const auto& c : cases) {
        FaultConfig cfg;
        cfg.global.*c.field = 1.0;
        Faults f(cfg);
        auto d = f.decide(kAdd);
        EXPECT_EQ(d.kind, c.kind) << to_string(c.kind);
        if (c.kind == FaultKind::http_5xx) {
            EXPECT_TRUE(d.http_status == 500 || d.http_status == 502 || d.http_status == 503);
        }
        if (c.kind == FaultKind::burst_429) {
            EXPECT_EQ(d.http_status, 429);
        }
        if (c.kind == FaultKind::transient_code) {
            EXPECT_EQ(d.msg, "系统繁忙");
        }
    }
}

TEST(SimFaults, FiveHundredsUseTheConfiguredCodes) {
    FaultConfig cfg;
    cfg.global.error_5xx_probability = 1;
    cfg.global.error_5xx_codes = {502};
    Faults f(cfg);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(f.decide(kAdd).http_status, 502);
}

TEST(SimFaults, EndpointRuleReplacesTheGlobalOne) {
    FaultConfig cfg;
    cfg.global.error_5xx_probability = 1;
    cfg.endpoints["simpleQuery"] = FaultRule{};  // by last path segment
    cfg.endpoints["group/add"].reset_probability = 1;  // by path
    Faults f(cfg);
    EXPECT_EQ(f.decide(kQuery).kind, FaultKind::none);
    EXPECT_EQ(f.decide(kAdd).kind, FaultKind::http_5xx);
    EXPECT_EQ(f.decide("group/add").kind, FaultKind::reset);
}

TEST(SimFaults, A429BurstLastsItsLength) {
    FaultConfig cfg;
    cfg.endpoints["customerAddGroups"].burst_429_probability = 0.05;
    cfg.endpoints["customerAddGroups"].burst_429_length = 4;
    cfg.endpoints["customerAddGroups"].retry_after_s = 2;
    Faults f(cfg, 3);
    auto seq = sequence(f, 2000);
    size_t i = 0, bursts = 0;
    while (i < seq.size()) {
        if (seq[i] != FaultKind::burst_429) {
            ++i;
            continue;
        }
        size_t run = 0;
        while (i < seq.size() && seq[i] == FaultKind::burst_429) ++run, ++i;
        ++bursts;
        if (i < seq.size()) {
            EXPECT_EQ(run % 4, 0u) << "bursts come in fours (back to back ones add up)";
        }
    }
    EXPECT_GT(bursts, 10u);
    cfg.endpoints["customerAddGroups"].burst_429_probability = 1;
    f.configure(cfg);
    EXPECT_EQ(f.decide(kAdd).retry_after_s, 2);
}

TEST(SimFaults, LatencyFixedAndSpikes) {
    FaultConfig cfg;
    cfg.global.latency_ms = 5;
    cfg.global.spike_probability = 0.5;
    cfg.global.spike_ms = 100;
    Faults f(cfg, 9);
    int spikes = 0;
    for (int i = 0; i < 200; ++i) {
        auto d = f.decide(kAdd);
        ASSERT_TRUE(d.delay.count() == 5 || d.delay.count() == 105) << d.delay.count();
        spikes += d.delay.count() == 105;
    }
    EXPECT_GT(spikes, 60);
    EXPECT_LT(spikes, 140);
}

TEST(SimFaults, ScriptComesFirstAndCountsDown) {
    Faults f;
    f.push_script({"customerAddGroups", FaultKind::reset, 2, 0, "", 0});
    f.push_script({"*", FaultKind::http_5xx, 1, 502, "", 0});
    EXPECT_EQ(f.decide(kQuery).http_status, 502) << "the wildcard entry serves the query";
    EXPECT_EQ(f.decide(kAdd).kind, FaultKind::reset);
    EXPECT_EQ(f.decide(kAdd).kind, FaultKind::reset);
    EXPECT_EQ(f.decide(kAdd).kind, FaultKind::none);
    EXPECT_TRUE(f.config().script.empty());
}

TEST(SimFaults, EndpointNamesMayCarryALeadingSlash) {
    FaultConfig cfg;
    cfg.endpoints["/customer-group-ref/customerAddGroups"].reset_probability = 1;
    Faults f(cfg);
    EXPECT_EQ(f.decide(kAdd).kind, FaultKind::reset);
    f.clear();
    f.push_script({"/customer-group/simpleQuery", FaultKind::non_json_body, 1, 0, "", 0});
    EXPECT_EQ(f.decide(kQuery).kind, FaultKind::non_json_body);
}

TEST(SimFaults, ParsesYamlAndRejectsBadKeys) {
    auto cfg = FaultConfig::from_yaml(R"(
seed: 7
global:
  latency_ms: 3
  error_5xx_probability: 0.25
  error_5xx_codes: [502, 503]
endpoints:
  customerAddGroups:
    transient_code_probability: 1
    transient_msg: "系统繁忙，请稍后再试"
script:
  - {endpoint: simpleQuery, kind: non_json_body, count: 2}
)");
    EXPECT_EQ(cfg.seed, 7u);
    EXPECT_EQ(cfg.global.latency_ms, 3);
    EXPECT_DOUBLE_EQ(cfg.global.error_5xx_probability, 0.25);
    EXPECT_EQ(cfg.global.error_5xx_codes, (std::vector<int>{502, 503}));
    EXPECT_EQ(cfg.endpoints.at("customerAddGroups").transient_msg, "系统繁忙，请稍后再试");
    ASSERT_EQ(cfg.script.size(), 1u);
    EXPECT_EQ(cfg.script[0].kind, FaultKind::non_json_body);
    EXPECT_EQ(cfg.script[0].count, 2);

    // The JSON form round-trips.
    auto again = FaultConfig::from_json(cfg.to_json());
    EXPECT_EQ(again.to_json(), cfg.to_json());

    EXPECT_THROW(FaultConfig::from_yaml("global: {error_5xx_probabilty: 0.1}"), std::invalid_argument);
    EXPECT_THROW(FaultConfig::from_yaml("global: {reset_probability: 1.5}"), std::invalid_argument);
    EXPECT_THROW(FaultConfig::from_yaml("global: {error_5xx_codes: [404]}"), std::invalid_argument);
    EXPECT_THROW(FaultConfig::from_yaml("script: [{kind: explode}]"), std::invalid_argument);
    EXPECT_THROW(FaultConfig::from_yaml("global: [1, 2"), std::invalid_argument);
    EXPECT_THROW(FaultConfig::from_yaml_file("/nonexistent/faults.yaml"), std::invalid_argument);
}

}  // namespace
}  // namespace cdpsync::sim
