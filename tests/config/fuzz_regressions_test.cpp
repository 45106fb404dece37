// Files the fuzz target fuzz_config (fuzz/, scripts/fuzz.sh) showed accepted although their
// values overflow where they are used: http::RateLimiter converts 1/rate_limit_qps seconds
// to clock ticks and floor(rate_limit_qps) to size_t, the daemon converts
// full_resync_interval_h to int64 milliseconds. Both keys now have an upper (and the rate a
// lower) bound, refused with ConfigError like any other out-of-range value.
#include "config/config.hpp"

#include <gtest/gtest.h>

namespace cdpsync::config {
namespace {

const std::string required =
    "database:\n"
    "  dsn: \"host=/tmp dbname=x\"\n"
    "  desired_memberships: SELECT 1, 'g'\n";

std::string error_key(const std::string& yaml) {
    try {
        load_string(required + yaml, "fuzz.yaml");
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.line(), 5) << e.what();
        return e.key();
    }
    return "<accepted>";
}

TEST(ConfigFuzzRegressions, RateLimitTheRateLimiterCannotConvertIsRefused) {
    // Found by the fuzzer (the quickstart file with this one value changed).
    EXPECT_EQ(error_key("cdp:\n  rate_limit_qps: 592233720368547758080\n"), "cdp.rate_limit_qps");
    EXPECT_EQ(error_key("cdp:\n  rate_limit_qps: 1e300\n"), "cdp.rate_limit_qps");
    EXPECT_EQ(error_key("cdp:\n  rate_limit_qps: 1e-300\n"), "cdp.rate_limit_qps");
    EXPECT_EQ(error_key("cdp:\n  rate_limit_qps: 0.0001\n"), "cdp.rate_limit_qps");

    // The bounds themselves, and the "unlimited" rate the scenario bench configures.
    EXPECT_EQ(load_string(required + "cdp:\n  rate_limit_qps: 0.001\n").cdp.rate_limit_qps, 0.001);
    EXPECT_EQ(load_string(required + "cdp:\n  rate_limit_qps: 1000000\n").cdp.rate_limit_qps, 1e6);
    EXPECT_EQ(load_string(required + "cdp:\n  rate_limit_qps: 1e9\n").cdp.rate_limit_qps, 1e9);
}

TEST(ConfigFuzzRegressions, FullResyncIntervalBeyondInt64MillisecondsIsRefused) {
    EXPECT_EQ(error_key("sync:\n  full_resync_interval_h: 1e300\n"), "sync.full_resync_interval_h");
    EXPECT_EQ(error_key("sync:\n  full_resync_interval_h: 3e12\n"), "sync.full_resync_interval_h");
    EXPECT_EQ(error_key("sync:\n  full_resync_interval_h: 87601\n"), "sync.full_resync_interval_h");
    EXPECT_EQ(load_string(required + "sync:\n  full_resync_interval_h: 87600\n").sync.full_resync_interval_h, 87600);
    EXPECT_EQ(load_string(required + "sync:\n  full_resync_interval_h: 0\n").sync.full_resync_interval_h, 0);
}

}  // namespace
}  // namespace cdpsync::config
