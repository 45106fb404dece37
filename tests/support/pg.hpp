// The PostgreSQL the *_pgtest.cpp tests run against: CDP_SYNC_TEST_DSN. Without it they are
// skipped, with one message that says how to get one.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

namespace cdpsync::testing {

inline constexpr const char* kNoTestDsn =
    "CDP_SYNC_TEST_DSN not set: start a cluster with scripts/pg-cluster.sh "
    "(export CDP_SYNC_TEST_DSN=$(bash scripts/pg-cluster.sh start DIR PORT))";

// The DSN, or "" when none is set.
inline std::string test_dsn() {
    const char* d = std::getenv("CDP_SYNC_TEST_DSN");
    return d ? d : "";
}

// The schemas of one test: (schema, src), cdp_sync's tables and the "user's" source table
// src.m (customer_id bigint, group_name text). Unique per test and process.
inline std::pair<std::string, std::string> unique_schemas(const std::string& tag) {
    static int counter = 0;
    const std::string suffix = tag + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    return {"cdp_sync_" + suffix, "src_" + suffix};
}
inline std::string create_source_sql(const std::string& src) {
    return "CREATE SCHEMA " + src + "; CREATE TABLE " + src + ".m (customer_id bigint, group_name text)";
}
inline std::string drop_schemas_sql(const std::string& schema, const std::string& src) {
    return "DROP SCHEMA IF EXISTS " + schema + " CASCADE; DROP SCHEMA IF EXISTS " + src + " CASCADE";
}

// One statement (or several, ';'-separated) in a transaction of its own.
inline void pg_exec(const std::string& dsn, const std::string& sql) {
    pqxx::connection c(dsn);
    pqxx::work w(c);
    w.exec(sql);
    w.commit();
}

// The first column of the one row `sql` returns; -1 for NULL.
inline int64_t pg_scalar(const std::string& dsn, const std::string& sql) {
    pqxx::connection c(dsn);
    pqxx::nontransaction w(c);
    auto r = w.exec1(sql);
    return r[0].is_null() ? -1 : r[0].as<int64_t>();
}

// The previous release's cdp_sync schema (0.1.0, schema version 2), from its frozen DDL
// tests/sync/data/cdp_sync_v2.sql, as SQL that creates it as `schema`.
inline std::string previous_release_schema_sql(const std::string& schema) {
    std::ifstream in(std::string(CDP_SYNC_SOURCE_DIR) + "/tests/sync/data/cdp_sync_v2.sql");
    if (!in) throw std::runtime_error("tests/sync/data/cdp_sync_v2.sql missing");
    std::stringstream text;
    text << in.rdbuf();
    std::string sql = text.str();
    for (size_t at = sql.find("@."); at != std::string::npos; at = sql.find("@.", at)) sql.replace(at, 1, schema);
    return "CREATE SCHEMA " + schema + "; " + sql;
}

}  // namespace cdpsync::testing

// In SetUp() or a test body (returns from it): `dsn_var = test_dsn()`, and the test is
// skipped when it is empty. A fixture's TearDown still runs and must allow an empty DSN.
#define CDP_SYNC_REQUIRE_PG(dsn_var)                                              \
    do {                                                                          \
        dsn_var = ::cdpsync::testing::test_dsn();                                 \
        if (dsn_var.empty()) GTEST_SKIP() << ::cdpsync::testing::kNoTestDsn;      \
    } while (false)
