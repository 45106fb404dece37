// Shared set-up for the daemon tests: the built cdp-sync binary run as a child process with
// a config of the test's own (its schema, its source tables, an in-process simulator, a
// 1-second poll), against a real PostgreSQL (CDP_SYNC_TEST_DSN, else skipped).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "sim/server.hpp"
#include "support/child_process.hpp"
#include "support/pg.hpp"

namespace cdpsync::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::string binary() { return built_binary("cdp-sync"); }

// Polls `pred` every 50 ms until it holds or `timeout` passes; returns whether it held.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return pred();
}

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

inline int count_of(const std::string& text, const std::string& needle) {
    int n = 0;
    for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + needle.size())) ++n;
    return n;
}

// The cdp-sync binary as a child process; stdout and stderr go (appended) to `output`.
class Child : public ChildProcess {
public:
    Child(const std::vector<std::string>& args, const std::filesystem::path& output,
          const std::vector<std::pair<std::string, std::string>>& env = {})
        : ChildProcess(binary(), args, options(output, env)) {}

private:
    static ChildOptions options(const std::filesystem::path& output,
                                const std::vector<std::pair<std::string, std::string>>& env) {
        ChildOptions o;
        o.stdout_path = output;
        o.append = true;
        o.set_env.insert(env.begin(), env.end());
        return o;
    }
};

inline constexpr const char* kDaemonToken = "daemon-test-token";

class DaemonTest : public ::testing::Test {
protected:
    void SetUp() override {
        CDP_SYNC_REQUIRE_PG(dsn);
        ASSERT_TRUE(std::filesystem::exists(binary())) << binary() << " is not built";
        spdlog::set_level(spdlog::level::warn);
        std::tie(schema, src) = unique_schemas("d");
        dir = std::filesystem::temp_directory_path() / ("cdp-sync-daemon-test-" + schema);
        std::filesystem::create_directories(dir);
        create_source();
        ::setenv("CDP_SYNC_DAEMON_TEST_TOKEN", kDaemonToken, 1);
        sim::ServerOptions o;
        o.token = kDaemonToken;
        o.threads = 2;
        server = std::make_unique<sim::Server>(o);
        server->start();
        server->state().add_customers(1, 2000);
    }

    void TearDown() override {
        if (dsn.empty()) return;  // skipped
        daemons.clear();
        if (server) server->stop();
        if (!dsn.empty()) {
            try {
                exec(drop_schemas_sql(schema, src));
            } catch (const std::exception&) {
            }
        }
        if (!HasFailure()) std::filesystem::remove_all(dir);
        else std::cerr << "daemon test files kept in " << dir << "\n";
    }

    void create_source() {
        exec(create_source_sql(src));
    }

    struct Settings {
        int poll_s = 1;
        double full_h = 24;
        double qps = 200;
        std::string change_query;
        std::string level = "info";
        std::string dsn;  // "" = the test's
        int retry_attempts = 2, retry_base_ms = 5, retry_max_ms = 20;
        std::string metrics_listen, metrics_textfile;  // "" = off
    };

    std::filesystem::path write_config(const Settings& s, const std::string& name = "config.yaml") {
        auto path = dir / name;
        std::ofstream out(path);
        out << "cdp:\n"
            << "  base_url: " << server->base_url() << "\n"
            << "  token_env: CDP_SYNC_DAEMON_TEST_TOKEN\n"
            << "  rate_limit_qps: " << s.qps << "\n"
            << "  max_in_flight: 4\n  page_size: 100\n  timeout_ms: 3000\n"
            << "  retry: {max_attempts: " << s.retry_attempts << ", base_delay_ms: " << s.retry_base_ms
            << ", max_delay_ms: " << s.retry_max_ms << "}\n"
            << "database:\n"
            << "  dsn: \"" << (s.dsn.empty() ? dsn : s.dsn) << "\"\n"
            << "  desired_memberships: \"SELECT customer_id, group_name FROM " << src << ".m\"\n"
            << "  change_query: \"" << s.change_query << "\"\n"
            << "  schema: " << schema << "\n"
            << "sync:\n"
            << "  poll_interval_s: " << s.poll_s << "\n"
            << "  full_resync_interval_h: " << s.full_h << "\n"
            << "metrics:\n"
            << "  listen: \"" << s.metrics_listen << "\"\n"
            << "  textfile: \"" << s.metrics_textfile << "\"\n"
            << "logging:\n"
            << "  file: " << (dir / "cdp-sync.log").string() << "\n"
            << "  level: " << s.level << "\n";
        return path;
    }

    Child& start_daemon(const std::filesystem::path& config,
                        const std::vector<std::pair<std::string, std::string>>& env = {}) {
        daemons.push_back(std::make_unique<Child>(std::vector<std::string>{"--config", config.string(), "run"},
                                                  dir / ("daemon" + std::to_string(daemons.size()) + ".out"), env));
        return *daemons.back();
    }

    // A daemon started with `s` that leads and finished a run successfully.
    Child& settled(const Settings& s) {
        auto& d = start_daemon(write_config(s));
        EXPECT_TRUE(eventually([&] { return leader_pid() == d.pid(); }, 15s)) << log_text();
        EXPECT_TRUE(eventually([&] { return runs("status = 'succeeded'") >= 1; }, 20s)) << log_text();
        return d;
    }

    // Runs the binary to completion; returns (exit code, output).
    std::pair<int, std::string> run_cli(const std::vector<std::string>& args, std::chrono::seconds timeout = 60s) {
        static int n = 0;
        auto out = dir / ("cli" + std::to_string(++n) + ".out");
        Child c(args, out);
        auto code = c.wait(timeout);
        return {code.value_or(-1), read_file(out)};
    }

    std::string log_text() { return read_file(dir / "cdp-sync.log"); }

    // Settings whose retries wait as long as the CDP asks (up to 120 s), logged at debug
    // ("retrying in").
    static Settings long_backoff_settings() {
        Settings s;
        s.level = "debug";
        s.retry_attempts = 5;
        s.retry_base_ms = 100;
        s.retry_max_ms = 120000;
        return s;
    }
    // Every customerAddGroups answered 429 asking for 120 s: the call sleeps in retry backoff.
    void add_groups_always_429() {
        sim::FaultConfig slow;
        sim::FaultRule always_429;
        always_429.burst_429_probability = 1.0;
        always_429.retry_after_s = 120;
        slow.endpoints["customerAddGroups"] = always_429;
        server->faults().configure(slow);
    }

    void exec(const std::string& sql, const std::string& on_dsn = "") { pg_exec(on_dsn.empty() ? dsn : on_dsn, sql); }
    int64_t scalar(const std::string& sql, const std::string& on_dsn = "") {
        return pg_scalar(on_dsn.empty() ? dsn : on_dsn, sql);
    }

    void add_rows(int64_t first, int64_t n, const std::string& group, const std::string& on_dsn = "") {
        exec("INSERT INTO " + src + ".m SELECT g, '" + group + "' FROM generate_series(" + std::to_string(first) +
                 ", " + std::to_string(first + n - 1) + ") g",
             on_dsn);
    }

    std::optional<int64_t> group_id(const std::string& name) {
        for (const auto& g : server->state().find_groups_by_name(name))
            if (g.type == 1) return g.id;
        return std::nullopt;
    }
    bool is_member(int64_t customer, const std::string& group) {
        auto id = group_id(group);
        return id && server->state().is_member(customer, *id);
    }
    size_t members(const std::string& group) {
        auto id = group_id(group);
        return id ? server->state().members_of(*id).size() : 0;
    }
    int64_t runs(const std::string& where = "true", const std::string& on_dsn = "") {
        try {
            return scalar("SELECT count(*) FROM " + schema + ".run WHERE " + where, on_dsn);
        } catch (const pqxx::sql_error&) {
            return 0;  // no run table yet
        }
    }
    // The daemon process id holding the leader lock (from daemon_leader), or 0.
    int leader_pid(const std::string& on_dsn = "") {
        try {
            return static_cast<int>(scalar(
                "SELECT coalesce((SELECT d.pid FROM " + schema + ".daemon_leader d WHERE EXISTS ("
                "SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 215568387"
                " AND l.objid = (hashtext('" + schema + "')::bigint & 4294967295)::oid)), 0)",
                on_dsn));
        } catch (const std::exception&) {
            return 0;
        }
    }

    std::string dsn, schema, src;
    std::filesystem::path dir;
    std::unique_ptr<sim::Server> server;
    std::vector<std::unique_ptr<Child>> daemons;
};

}  // namespace cdpsync::testing
