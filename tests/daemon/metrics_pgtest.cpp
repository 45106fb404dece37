// The daemon's Prometheus metrics: served on metrics.listen from its event loop, written to
// metrics.textfile after each run, and valid for promtool.
#include <cstdlib>
#include <sstream>

#include "../support/shell.hpp"
#include "daemon_fixture.hpp"

namespace cdpsync::testing {
namespace {

// The value of the sample `series` (name and labels exactly as exposed), or nullopt.
std::optional<double> sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    return std::nullopt;
}

bool have_promtool() { return !sh("command -v promtool").empty(); }

// promtool's verdict on `text`: "" when it passes, else its complaints.
std::string promtool_check(const std::filesystem::path& dir, const std::string& text) {
    const auto file = dir / "check.prom";
    std::ofstream(file) << text;
    const std::string out = sh("promtool check metrics < " + file.string() + " 2>&1; echo \"exit=$?\"");
    return out.size() >= 6 && out.substr(out.size() - 6) == "exit=0" ? "" : out;
}

TEST_F(DaemonTest, MetricsAreServedAndWrittenAfterARun) {
    add_rows(1, 5, "alpha");
    Settings s;
    const int port = free_port();
    s.metrics_listen = "127.0.0.1:" + std::to_string(port);
    s.metrics_textfile = (dir / "cdp_sync.prom").string();
    auto& d = settled(s);  // the first run is a full one: the history has none
    ASSERT_TRUE(eventually([&] { return members("alpha") == 5; }, 10s));
    const std::string url = "http://127.0.0.1:" + std::to_string(port);

    std::string text;
    ASSERT_TRUE(eventually(
        [&] {
            // To a file: the body exactly as served (sh() would trim the last newline).
            sh("curl -sf -o " + (dir / "scrape.prom").string() + " " + url + "/metrics");
            text = read_file(dir / "scrape.prom");
            return sample(text, "cdp_sync_memberships{side=\"mirror\"}") == 5.0;
        },
        10s))
        << text << log_text();
    EXPECT_EQ(sample(text, "cdp_sync_runs_total{mode=\"full\",outcome=\"succeeded\"}"), 1.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_runs_total{mode=\"full\",outcome=\"failed\"}"), 0.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_leader"), 1.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_build_info{version=\"0.1.0\"}"), 1.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_rate_limit_qps"), 200.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_memberships{side=\"desired\"}"), 5.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_ops{state=\"pending\"}"), 0.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_ops{state=\"permanent\"}"), 0.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_http_429_total"), 0.0) << text;
    EXPECT_EQ(sample(text, "cdp_sync_drift_corrections_total"), 0.0) << text;
    // Five customers joined one group: five add calls, each answered at the first attempt.
    EXPECT_EQ(sample(text, "cdp_sync_calls_total{endpoint=\"/customer-group-ref/customerAddGroups\",outcome=\"ok\"}"),
              5.0)
        << text;
    EXPECT_GE(sample(text, "cdp_sync_run_duration_seconds{mode=\"full\",phase=\"total\"}").value_or(-1), 0.0) << text;
    EXPECT_GT(sample(text, "cdp_sync_last_success_timestamp_seconds{mode=\"full\"}").value_or(0), 1.7e9) << text;
    EXPECT_NE(text.find("# TYPE cdp_sync_runs_total counter"), std::string::npos) << text;
    EXPECT_NE(sh("curl -s -o /dev/null -w '%{http_code}' " + url + "/other"), "") << "no answer for another path";
    EXPECT_EQ(sh("curl -s -o /dev/null -w '%{http_code}' " + url + "/other"), "404");

    // The textfile holds the same figures (written after each run).
    const std::string file = read_file(s.metrics_textfile);
    EXPECT_EQ(sample(file, "cdp_sync_runs_total{mode=\"full\",outcome=\"succeeded\"}"), 1.0) << file;
    EXPECT_EQ(sample(file, "cdp_sync_memberships{side=\"mirror\"}"), 5.0) << file;
    EXPECT_TRUE(d.running());

    if (!have_promtool())
        GTEST_SKIP() << "promtool is not installed (Debian package prometheus): the exposition was not linted";
    EXPECT_EQ(promtool_check(dir, text), "");
    EXPECT_EQ(promtool_check(dir, file), "");
}

TEST_F(DaemonTest, RunOnceWritesTheMetricsTextfile) {
    add_rows(1, 3, "alpha");
    Settings s;
    s.metrics_textfile = (dir / "once.prom").string();
    auto [code, out] = run_cli({"--config", write_config(s).string(), "run", "--once"});
    ASSERT_EQ(code, 0) << out;
    const std::string file = read_file(s.metrics_textfile);
    EXPECT_EQ(sample(file, "cdp_sync_runs_total{mode=\"incremental\",outcome=\"succeeded\"}"), 1.0) << file;
    EXPECT_EQ(sample(file, "cdp_sync_memberships{side=\"mirror\"}"), 3.0) << file;
    EXPECT_EQ(sample(file, "cdp_sync_leader"), 0.0) << file;
}

}  // namespace
}  // namespace cdpsync::testing
