// The fixture of the store tests: a Session on a fresh, migrated cdp_sync schema and an
// empty schema `src` for the test's source tables; both dropped afterwards. Skipped without
// CDP_SYNC_TEST_DSN (a derived SetUp returns when IsSkipped()).
#pragma once

#include <memory>
#include <string>
#include <tuple>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "store/session.hpp"
#include "support/pg.hpp"

namespace cdpsync::testing {

class StoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        CDP_SYNC_REQUIRE_PG(dsn);
        spdlog::set_level(spdlog::level::warn);
        std::tie(schema, src) = unique_schemas("store");
        pg_exec(dsn, "CREATE SCHEMA " + src);
        db.dsn = dsn;
        db.schema = schema;
        s = std::make_unique<store::Session>(dsn, schema);
        s->migrate();
    }

    void TearDown() override {
        s.reset();
        if (!dsn.empty()) pg_exec(dsn, drop_schemas_sql(schema, src));
    }

    std::string dsn, schema, src;
    config::DatabaseConfig db;
    std::unique_ptr<store::Session> s;
};

}  // namespace cdpsync::testing
