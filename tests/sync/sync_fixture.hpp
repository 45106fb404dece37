// Shared set-up for the sync tests: a real PostgreSQL (CDP_SYNC_TEST_DSN, else skipped), a
// schema of our own per test for cdp_sync and one for the "user's" source tables, and an
// in-process simulator.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "config/config.hpp"
#include "sim/server.hpp"
#include "support/pg.hpp"
#include "sync/engine.hpp"

namespace cdpsync::testing {

inline constexpr const char* kToken = "sync-test-token";

class SyncTest : public ::testing::Test {
public:
    // customers [first, first+n) in group `name`.
    static void add_range(std::vector<std::pair<int64_t, std::string>>& rows, int64_t first, int64_t n,
                          const std::string& name) {
        for (int64_t c = first; c < first + n; ++c) rows.emplace_back(c, name);
    }

protected:
    void SetUp() override {
        CDP_SYNC_REQUIRE_PG(dsn);
        spdlog::set_level(spdlog::level::warn);
        std::tie(schema, src) = unique_schemas("t");
        exec(create_source_sql(src) + "; CREATE TABLE " + src + ".g (name text, description text, folder text)");
        ::setenv("CDP_SYNC_TEST_TOKEN", kToken, 1);
        sim::ServerOptions o;
        o.token = kToken;
        o.threads = 2;
        server = std::make_unique<sim::Server>(o);
        server->start();
        server->state().add_customers(1, 2000);
        cfg = make_config();
    }

    void TearDown() override {
        if (server) server->stop();
        if (!dsn.empty()) exec(drop_schemas_sql(schema, src));
    }

    config::Config make_config() {
        config::Config c;
        c.cdp.base_url = server->base_url();
        c.cdp.token_env = "CDP_SYNC_TEST_TOKEN";
        c.cdp.rate_limit_qps = 0;  // off
        c.cdp.max_in_flight = 4;
        c.cdp.page_size = 50;
        c.cdp.timeout_ms = 5000;
        c.cdp.retry = {2, 5, 20};
        c.database.dsn = dsn;
        c.database.schema = schema;
        c.database.desired_memberships = "SELECT customer_id, group_name FROM " + src + ".m";
        c.logging.file = "";
        return c;
    }

    void exec(const std::string& sql) { pg_exec(dsn, sql); }
    int64_t scalar(const std::string& sql) { return pg_scalar(dsn, sql); }

    // Replaces the desired memberships.
    void desire(const std::vector<std::pair<int64_t, std::string>>& rows) {
        pqxx::connection c(dsn);
        pqxx::work w(c);
        w.exec("TRUNCATE " + src + ".m");
        pqxx::stream_to s(w, src + ".m", std::vector<std::string>{"customer_id", "group_name"});
        for (const auto& [cid, g] : rows) s << std::make_tuple(cid, g);
        s.complete();
        w.commit();
    }

    sync::RunReport resync(bool force = false) {
        sync::Engine e(cfg);
        sync::RunRequest r;
        r.kind = sync::RunKind::full;
        r.force = force;
        return e.run(r);
    }
    sync::RunReport once(bool force = false) {
        sync::Engine e(cfg);
        sync::RunRequest r;
        r.kind = sync::RunKind::incremental;
        r.force = force;
        return e.run(r);
    }
    sync::PlanReport plan(bool full) {
        sync::Engine e(cfg);
        sync::PlanRequest r;
        r.full = full;
        return e.plan(r);
    }

    int64_t write_calls() { return server->stats()["write_calls"].get<int64_t>(); }
    int64_t endpoint_calls(const std::string& endpoint) {
        auto s = server->stats();
        auto& eps = s["endpoints"];
        if (!eps.contains(endpoint)) return 0;
        return eps[endpoint].value("calls", int64_t{0});
    }
    int64_t member_reads() { return endpoint_calls("customer-group/getCustomerPageByGroupId"); }

    std::optional<int64_t> group_id(const std::string& name) {
        for (const auto& g : server->state().find_groups_by_name(name))
            if (g.type == cdp::kStaticGroup) return g.id;
        return std::nullopt;
    }

    // The CDP's members of each desired group equal the desired rows (valid ones).
    void expect_converged(const std::vector<std::pair<int64_t, std::string>>& rows) {
        std::map<std::string, std::set<int64_t>> want;
        for (const auto& [c, g] : rows) want[g].insert(c);
        for (const auto& [name, members] : want) {
            auto id = group_id(name);
            ASSERT_TRUE(id) << "group " << name << " missing in the CDP";
            auto got = server->state().members_of(*id);
            EXPECT_EQ(std::set<int64_t>(got.begin(), got.end()), members) << "group " << name;
        }
    }

    std::string dsn, schema, src;
    std::unique_ptr<sim::Server> server;
    config::Config cfg;
};

}  // namespace cdpsync::testing
