// Shared set-up for the daemon tests: the built cdp-sync binary run as a child process with
// a config of the test's own (its schema, its source tables, an in-process simulator, a
// 1-second poll), against a real PostgreSQL (CDP_SYNC_TEST_DSN, required).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
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
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "sim/server.hpp"

namespace cdpsync::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::string binary() { return std::string(CDP_SYNC_BINARY_DIR) + "/cdp-sync"; }

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

// A child process running the cdp-sync binary; stdout and stderr go to `output`.
class Child {
public:
    Child(const std::vector<std::string>& args, const std::filesystem::path& output,
          const std::vector<std::pair<std::string, std::string>>& env = {}) {
        pid_ = ::fork();
        if (pid_ == 0) {
            int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            std::vector<char*> argv;
            std::string bin = binary();
            argv.push_back(bin.data());
            std::vector<std::string> copy = args;
            for (auto& a : copy) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(bin.c_str(), argv.data());
            ::_exit(127);
        }
    }
    ~Child() {
        if (running()) {
            ::kill(pid_, SIGKILL);
            wait(5s);
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    int pid() const { return pid_; }
    void signal(int sig) { ::kill(pid_, sig); }
    bool running() {
        if (exited_) return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            status_ = status;
            return false;
        }
        return true;
    }
    // The exit code once it exited within `timeout` (128+signal when killed), else nullopt.
    std::optional<int> wait(std::chrono::milliseconds timeout) {
        if (!eventually([&] { return !running(); }, timeout)) return std::nullopt;
        if (WIFEXITED(status_)) return WEXITSTATUS(status_);
        return 128 + WTERMSIG(status_);
    }

private:
    int pid_ = -1;
    bool exited_ = false;
    int status_ = 0;
};

inline constexpr const char* kDaemonToken = "daemon-test-token";

class DaemonTest : public ::testing::Test {
protected:
    void SetUp() override {
        const char* d = std::getenv("CDP_SYNC_TEST_DSN");
        dsn = d ? d : "";
        ASSERT_FALSE(dsn.empty()) << "CDP_SYNC_TEST_DSN is not set: the daemon tests need a PostgreSQL server "
                                     "(scripts/pg-cluster.sh start DIR PORT prints a DSN to export)";
        ASSERT_TRUE(std::filesystem::exists(binary())) << binary() << " is not built";
        spdlog::set_level(spdlog::level::warn);
        static int counter = 0;
        const std::string suffix = "d" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
        schema = "cdp_sync_" + suffix;
        src = "src_" + suffix;
        dir = std::filesystem::temp_directory_path() / ("cdp-sync-daemon-test-" + suffix);
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
        daemons.clear();
        if (server) server->stop();
        if (!dsn.empty()) {
            try {
                exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE; DROP SCHEMA IF EXISTS " + src + " CASCADE");
            } catch (const std::exception&) {
            }
        }
        if (!HasFailure()) std::filesystem::remove_all(dir);
        else std::cerr << "daemon test files kept in " << dir << "\n";
    }

    void create_source() {
        exec("CREATE SCHEMA " + src + "; CREATE TABLE " + src + ".m (customer_id bigint, group_name text)");
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

    void exec(const std::string& sql, const std::string& on_dsn = "") {
        pqxx::connection c(on_dsn.empty() ? dsn : on_dsn);
        pqxx::work w(c);
        w.exec(sql);
        w.commit();
    }
    int64_t scalar(const std::string& sql, const std::string& on_dsn = "") {
        pqxx::connection c(on_dsn.empty() ? dsn : on_dsn);
        pqxx::nontransaction w(c);
        auto r = w.exec1(sql);
        return r[0].is_null() ? -1 : r[0].as<int64_t>();
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
