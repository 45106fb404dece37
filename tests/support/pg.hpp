// The PostgreSQL the *_pgtest.cpp tests run against: CDP_SYNC_TEST_DSN. Without it they are
// skipped, with one message that says how to get one.
#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace cdpsync::testing {

inline constexpr const char* kNoTestDsn =
    "CDP_SYNC_TEST_DSN not set: start a cluster with scripts/pg-cluster.sh "
    "(export CDP_SYNC_TEST_DSN=$(bash scripts/pg-cluster.sh start DIR PORT))";

// The DSN, or "" when none is set.
inline std::string test_dsn() {
    const char* d = std::getenv("CDP_SYNC_TEST_DSN");
    return d ? d : "";
}

}  // namespace cdpsync::testing

// In SetUp() or a test body (returns from it): `dsn_var = test_dsn()`, and the test is
// skipped when it is empty. A fixture's TearDown still runs and must allow an empty DSN.
#define CDP_SYNC_REQUIRE_PG(dsn_var)                                              \
    do {                                                                          \
        dsn_var = ::cdpsync::testing::test_dsn();                                 \
        if (dsn_var.empty()) GTEST_SKIP() << ::cdpsync::testing::kNoTestDsn;      \
    } while (false)
