// The cdp-sync binary against the sync fixture's simulator, source tables and schema.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "daemon/daemon_fixture.hpp"
#include "faults/fault_ledger.hpp"
#include "sync/sync_fixture.hpp"

namespace cdpsync::testing::faults {

// The cdp-sync binary run against the fixture's simulator and schemas (config.yaml in `dir`).
class BinarySyncTest : public SyncTest {
public:
    static constexpr int kInFlight = 4;
    static constexpr int kPageSize = 20;
    static constexpr int kTimeoutMs = 1000;

protected:
    void SetUp() override {
        SyncTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        spdlog::set_level(spdlog::level::err);
        ASSERT_TRUE(std::filesystem::exists(binary())) << binary() << " is not built";
        dir = std::filesystem::temp_directory_path() / ("cdp-sync-faults-" + schema);
        std::filesystem::create_directories(dir);
        config_path = write_config(config_text());
    }
    void TearDown() override {
        child.reset();
        if (!HasFailure()) {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        } else {
            std::cerr << "fault test files kept in " << dir << "\n";
        }
        SyncTest::TearDown();
    }

    // A valid config for this test; `sync_extra` lines go under `sync:`.
    std::string config_text(const std::string& sync_extra = "") const {
        std::ostringstream f;
        f << "cdp:\n"
          << "  base_url: " << (base_url.empty() ? server->base_url() : base_url) << "\n"
          << "  token_env: CDP_SYNC_TEST_TOKEN\n"
          << "  rate_limit_qps: 10000\n"
          << "  max_in_flight: " << kInFlight << "\n"
          << "  page_size: " << kPageSize << "\n"
          << "  timeout_ms: " << kTimeoutMs << "\n"
          << "  retry: {max_attempts: 4, base_delay_ms: 5, max_delay_ms: 50}\n"
          << "database:\n"
          << "  dsn: \"" << dsn << "\"\n"
          << "  desired_memberships: \"SELECT customer_id, group_name FROM " << src << ".m\"\n"
          << "  schema: " << schema << "\n"
          << "sync:\n"
          << sync_extra
          << "logging:\n"
          << "  file: \"\"\n"
          << "  level: info\n";
        return f.str();
    }
    std::filesystem::path write_config(const std::string& text, const std::string& name = "config.yaml") {
        const auto path = dir / name;
        std::ofstream(path) << text;
        return path;
    }
    // Runs the binary to its end; (exit code, output).
    std::pair<int, std::string> run_binary(const std::vector<std::string>& args, std::chrono::seconds limit = 120s) {
        static int n = 0;
        const auto out = dir / ("run" + std::to_string(++n) + ".out");
        Child c(args, out);
        const int code = c.wait(limit).value_or(-1);
        return {code, read_file(out)};
    }
    std::pair<int, std::string> resync_binary(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args{"--config", config_path.string(), "resync"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run_binary(args);
    }

    int64_t query_or(const std::string& sql, int64_t fallback) {
        try {
            return scalar(sql);
        } catch (const std::exception&) {
            return fallback;  // the schema or table is not there yet
        }
    }

    std::filesystem::path dir, config_path;
    std::unique_ptr<Child> child;
    std::string base_url;  // "" = the simulator's
};

}  // namespace cdpsync::testing::faults
