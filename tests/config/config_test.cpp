#include "config/config.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include "config/token.hpp"
#include "test_util.hpp"

namespace cdpsync::config {
namespace {

using test::ScopedEnv;
using test::TempDir;

// The two keys every file needs, for tests about something else.
const std::string required =
    "database:\n"
    "  dsn: \"host=/tmp dbname=x\"\n"
    "  desired_memberships: SELECT 1, 'g'\n";

// Loads yaml expecting a ConfigError; returns it.
ConfigError load_error(const std::string& yaml, const std::string& name = "test.yaml") {
    try {
        load_string(yaml, name);
    } catch (const ConfigError& e) {
        return e;
    }
    ADD_FAILURE() << "no ConfigError for:\n" << yaml;
    return ConfigError("", 0, "", "");
}

TEST(ConfigLoad, FullConfigSetsEveryKey) {
    const std::string yaml = R"(cdp:
  base_url: https://cdp.example.com/openapi/
  token_file: /run/secrets/cdp
  ca_file: /etc/ssl/extra.pem
  rate_limit_qps: 2.5
  max_in_flight: 3
  page_size: 500
  timeout_ms: 1500
  retry: {max_attempts: 4, base_delay_ms: 50, max_delay_ms: 800}
  customer_id_field: customerId
  max_groups_per_call: 20
  folder: Synced
database:
  dsn: "postgresql:///customers"
  desired_memberships: "SELECT customer_id, group_name FROM crm.customer_group"
  desired_groups: "SELECT name, description, folder FROM crm.cdp_group"
  change_query: "SELECT max(updated_at) FROM crm.customer_group"
  schema: sync_state
sync:
  mode: additive
  poll_interval_s: 30
  full_resync_interval_h: 0.5
  max_deletes: 0
  owns_all_static_groups: false
  prune_groups: yes
  drift_check: off
  permanent_retry_interval_h: 2
metrics:
  listen: "[::1]:9464"
  textfile: /var/lib/node_exporter/cdp_sync.prom
logging:
  file: /tmp/x/cdp.log
  level: DEBUG
  format: json
  max_size_mb: 5
  max_files: 3
)";
    const Config c = load_string(yaml);
    EXPECT_EQ(c.source, "");
    EXPECT_EQ(c.cdp.base_url, "https://cdp.example.com/openapi");  // trailing slash dropped
    EXPECT_EQ(c.cdp.token_env, "");
    EXPECT_EQ(c.cdp.token_file, "/run/secrets/cdp");
    EXPECT_TRUE(c.cdp.token_command.empty());
    EXPECT_EQ(c.cdp.ca_file, "/etc/ssl/extra.pem");
    EXPECT_DOUBLE_EQ(c.cdp.rate_limit_qps, 2.5);
    EXPECT_EQ(c.cdp.max_in_flight, 3);
    EXPECT_EQ(c.cdp.page_size, 500);
    EXPECT_EQ(c.cdp.timeout_ms, 1500);
    EXPECT_EQ(c.cdp.retry.max_attempts, 4);
    EXPECT_EQ(c.cdp.retry.base_delay_ms, 50);
    EXPECT_EQ(c.cdp.retry.max_delay_ms, 800);
    EXPECT_EQ(c.cdp.customer_id_field, "customerId");
    EXPECT_EQ(c.cdp.folder, "Synced");
    EXPECT_EQ(c.database.dsn, "postgresql:///customers");
    EXPECT_EQ(c.database.desired_memberships, "SELECT customer_id, group_name FROM crm.customer_group");
    EXPECT_EQ(c.database.desired_groups, "SELECT name, description, folder FROM crm.cdp_group");
    EXPECT_EQ(c.database.change_query, "SELECT max(updated_at) FROM crm.customer_group");
    EXPECT_EQ(c.database.schema, "sync_state");
    EXPECT_EQ(c.sync.mode, SyncMode::additive);
    EXPECT_EQ(c.sync.poll_interval_s, 30);
    EXPECT_DOUBLE_EQ(c.sync.full_resync_interval_h, 0.5);
    EXPECT_EQ(c.sync.max_deletes, 0);
    EXPECT_FALSE(c.sync.owns_all_static_groups);
    EXPECT_TRUE(c.sync.prune_groups);
    EXPECT_FALSE(c.sync.drift_check);
    EXPECT_DOUBLE_EQ(c.sync.permanent_retry_interval_h, 2);
    EXPECT_EQ(c.cdp.max_groups_per_call, 20);
    EXPECT_EQ(c.metrics.listen, "[::1]:9464");
    EXPECT_EQ(c.metrics.textfile, "/var/lib/node_exporter/cdp_sync.prom");
    EXPECT_EQ(c.logging.file, "/tmp/x/cdp.log");
    EXPECT_EQ(c.logging.level, "debug");
    EXPECT_EQ(c.logging.format, LogFormat::json);
    EXPECT_EQ(c.logging.max_size_mb, 5);
    EXPECT_EQ(c.logging.max_files, 3);
}

TEST(ConfigLoad, TokenCommandIsAnArgv) {
    const Config c = load_string(required + "cdp:\n  token_command: [/usr/bin/get-token, --profile, prod]\n");
    EXPECT_EQ(c.cdp.token_command, (std::vector<std::string>{"/usr/bin/get-token", "--profile", "prod"}));
}

TEST(ConfigLoad, DefaultsForEverythingButTheRequiredKeys) {
    const Config c = load_string(required);
    const Config d;
    EXPECT_EQ(c.cdp.base_url, "https://cdpma.baiyaodajiankang.com/openapi");
    EXPECT_EQ(c.cdp.base_url, d.cdp.base_url);
    EXPECT_TRUE(c.cdp.token_env.empty());
    EXPECT_TRUE(c.cdp.token_file.empty());
    EXPECT_TRUE(c.cdp.token_command.empty());
    EXPECT_EQ(c.cdp.ca_file, "");
    EXPECT_DOUBLE_EQ(c.cdp.rate_limit_qps, 10);
    EXPECT_EQ(c.cdp.max_in_flight, 8);
    EXPECT_EQ(c.cdp.page_size, 200);
    EXPECT_EQ(c.cdp.timeout_ms, 10000);
    EXPECT_EQ(c.cdp.retry.max_attempts, 6);
    EXPECT_EQ(c.cdp.retry.base_delay_ms, 200);
    EXPECT_EQ(c.cdp.retry.max_delay_ms, 30000);
    EXPECT_EQ(c.cdp.customer_id_field, "");
    EXPECT_EQ(c.cdp.max_groups_per_call, 0);
    EXPECT_EQ(c.cdp.folder, "");
    EXPECT_EQ(c.database.desired_groups, "");
    EXPECT_EQ(c.database.change_query, "");
    EXPECT_EQ(c.database.schema, "cdp_sync");
    EXPECT_EQ(c.sync.mode, SyncMode::mirror);
    EXPECT_EQ(c.sync.poll_interval_s, 60);
    EXPECT_DOUBLE_EQ(c.sync.full_resync_interval_h, 24);
    EXPECT_EQ(c.sync.max_deletes, 500);
    EXPECT_FALSE(c.sync.owns_all_static_groups);
    EXPECT_FALSE(c.sync.prune_groups);
    EXPECT_TRUE(c.sync.drift_check);
    EXPECT_DOUBLE_EQ(c.sync.permanent_retry_interval_h, 24);
    EXPECT_EQ(c.metrics.listen, "");
    EXPECT_EQ(c.metrics.textfile, "");
    EXPECT_EQ(c.logging.file, "/var/log/cdp-sync/cdp-sync.log");
    EXPECT_EQ(c.logging.level, "info");
    EXPECT_EQ(c.logging.format, LogFormat::text);
    EXPECT_EQ(c.logging.max_size_mb, 50);
    EXPECT_EQ(c.logging.max_files, 10);
}

TEST(ConfigLoad, EmptySectionsTakeDefaults) {
    const Config c = load_string(required + "cdp:\nsync:\nlogging:\n");
    EXPECT_EQ(c.cdp.page_size, 200);
    EXPECT_EQ(c.sync.mode, SyncMode::mirror);
}

TEST(ConfigRequired, MissingDsn) {
    const auto e = load_error("database:\n  desired_memberships: SELECT 1, 'g'\n");
    EXPECT_EQ(e.key(), "database.dsn");
    EXPECT_NE(std::string(e.what()).find("database.dsn: is required"), std::string::npos) << e.what();
}

TEST(ConfigRequired, MissingDesiredMemberships) {
    const auto e = load_error("database:\n  dsn: postgresql:///x\n");
    EXPECT_EQ(e.key(), "database.desired_memberships");
    EXPECT_EQ(e.line(), 1);  // the database section
    EXPECT_NE(std::string(e.what()).find("is required"), std::string::npos) << e.what();
}

TEST(ConfigRequired, EmptyValueCountsAsMissing) {
    const auto e = load_error("database:\n  dsn: \"\"\n  desired_memberships: SELECT 1, 'g'\n");
    EXPECT_EQ(e.key(), "database.dsn");
    EXPECT_EQ(e.line(), 2);

    const auto e2 = load_error("database:\n  desired_memberships: SELECT 1, 'g'\n  dsn:\n");
    EXPECT_EQ(e2.key(), "database.dsn");
    EXPECT_EQ(e2.line(), 3);
}

TEST(ConfigRequired, EmptyFileNamesEveryRequiredKey) {
    for (const std::string yaml : {"", "# only a comment\n", "\n\n"}) {
        const auto e = load_error(yaml, "empty.yaml");
        EXPECT_EQ(e.key(), "database.dsn");
        EXPECT_EQ(e.file(), "empty.yaml");
        const std::string what = e.what();
        EXPECT_NE(what.find("database.dsn"), std::string::npos) << what;
        EXPECT_NE(what.find("database.desired_memberships"), std::string::npos) << what;
    }
}

TEST(ConfigRequired, NoTokenSourceIsAllowedAtLoad) {
    // None set means $CREDENTIALS_DIRECTORY/token, checked when the token is read.
    const Config c = load_string(required);
    EXPECT_FALSE(TokenSource(c.cdp).describe().empty());
}

TEST(ConfigErrors, UnknownTopLevelKeyNamesKeyAndLine) {
    const auto e = load_error(required + "sink:\n  x: 1\n", "/etc/cdp-sync/config.yaml");
    EXPECT_EQ(e.key(), "sink");
    EXPECT_EQ(e.line(), 4);
    EXPECT_EQ(e.file(), "/etc/cdp-sync/config.yaml");
    EXPECT_EQ(std::string(e.what()), "/etc/cdp-sync/config.yaml:4: sink: unknown key");
}

TEST(ConfigErrors, UnknownNestedKeyNamesDottedPathAndLine) {
    const auto e = load_error(required + "cdp:\n  page_size: 10\n  retry:\n    max_attempts: 3\n    max_atempts: 4\n");
    EXPECT_EQ(e.key(), "cdp.retry.max_atempts");
    EXPECT_EQ(e.line(), 8);
    EXPECT_NE(std::string(e.what()).find("test.yaml:8: cdp.retry.max_atempts"), std::string::npos) << e.what();

    const auto e2 = load_error("database:\n  dsn: x\n  desired_memberships: y\n  scheme: z\n");
    EXPECT_EQ(e2.key(), "database.scheme");
    EXPECT_EQ(e2.line(), 4);
}

TEST(ConfigErrors, DuplicateKey) {
    const auto e = load_error(required + "cdp:\n  page_size: 10\n  page_size: 20\n");
    EXPECT_EQ(e.key(), "cdp.page_size");
    EXPECT_EQ(e.line(), 6);
}

TEST(ConfigErrors, WrongTypeNamesKeyAndLine) {
    struct Case {
        std::string yaml;
        std::string key;
        int line;
    };
    const std::vector<Case> cases = {
        {"cdp:\n  page_size: lots\n", "cdp.page_size", 5},
        {"cdp:\n  page_size: 2.5\n", "cdp.page_size", 5},
        {"cdp:\n  page_size: \"200\"\n", "cdp.page_size", 5},
        {"cdp:\n  page_size: [1, 2]\n", "cdp.page_size", 5},
        {"cdp:\n  rate_limit_qps: fast\n", "cdp.rate_limit_qps", 5},
        {"cdp:\n  rate_limit_qps: .inf\n", "cdp.rate_limit_qps", 5},
        {"cdp:\n  base_url: {a: 1}\n", "cdp.base_url", 5},
        {"cdp:\n  retry: 3\n", "cdp.retry", 5},
        {"cdp:\n  token_command: /usr/bin/get-token\n", "cdp.token_command", 5},
        {"cdp: 5\n", "cdp", 4},
        {"sync:\n  owns_all_static_groups: maybe\n", "sync.owns_all_static_groups", 5},
        {"sync:\n  prune_groups: 1\n", "sync.prune_groups", 5},
        {"sync:\n  max_deletes: many\n", "sync.max_deletes", 5},
        {"logging:\n  max_files: ten\n", "logging.max_files", 5},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.yaml);
        const auto e = load_error(required + c.yaml);
        EXPECT_EQ(e.key(), c.key) << e.what();
        EXPECT_EQ(e.line(), c.line) << e.what();
        EXPECT_NE(std::string(e.what()).find("test.yaml:" + std::to_string(c.line) + ": " + c.key + ": "),
                  std::string::npos)
            << e.what();
    }
}

TEST(ConfigErrors, TopLevelMustBeAMapping) {
    const auto e = load_error("- a\n- b\n");
    EXPECT_EQ(e.line(), 1);
}

TEST(ConfigErrors, OutOfRangeValues) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"cdp:\n  rate_limit_qps: 0\n", "cdp.rate_limit_qps"},
        {"cdp:\n  rate_limit_qps: -1\n", "cdp.rate_limit_qps"},
        {"cdp:\n  max_in_flight: 0\n", "cdp.max_in_flight"},
        {"cdp:\n  max_in_flight: 257\n", "cdp.max_in_flight"},
        {"cdp:\n  page_size: 0\n", "cdp.page_size"},
        {"cdp:\n  page_size: 10001\n", "cdp.page_size"},
        {"cdp:\n  timeout_ms: 0\n", "cdp.timeout_ms"},
        {"cdp:\n  timeout_ms: 600001\n", "cdp.timeout_ms"},
        {"cdp:\n  retry:\n    max_attempts: 0\n", "cdp.retry.max_attempts"},
        {"cdp:\n  retry:\n    max_attempts: 101\n", "cdp.retry.max_attempts"},
        {"cdp:\n  retry:\n    base_delay_ms: 0\n", "cdp.retry.base_delay_ms"},
        {"cdp:\n  retry:\n    base_delay_ms: 600001\n", "cdp.retry.base_delay_ms"},
        {"cdp:\n  retry:\n    base_delay_ms: 500\n    max_delay_ms: 400\n", "cdp.retry.max_delay_ms"},
        {"cdp:\n  retry:\n    base_delay_ms: 40000\n", "cdp.retry.max_delay_ms"},
        {"cdp:\n  page_size: 99999999999999999999999\n", "cdp.page_size"},
        {"sync:\n  poll_interval_s: 0\n", "sync.poll_interval_s"},
        {"sync:\n  poll_interval_s: 86401\n", "sync.poll_interval_s"},
        {"sync:\n  full_resync_interval_h: -0.5\n", "sync.full_resync_interval_h"},
        {"sync:\n  max_deletes: -1\n", "sync.max_deletes"},
        {"logging:\n  max_size_mb: 0\n", "logging.max_size_mb"},
        {"logging:\n  max_size_mb: 10001\n", "logging.max_size_mb"},
        {"logging:\n  max_files: 0\n", "logging.max_files"},
        {"logging:\n  max_files: 1001\n", "logging.max_files"},
    };
    for (const auto& [yaml, key] : cases) {
        SCOPED_TRACE(yaml);
        const auto e = load_error(required + yaml);
        EXPECT_EQ(e.key(), key) << e.what();
        EXPECT_GE(e.line(), 5) << e.what();
    }
    // The bounds themselves are valid.
    const Config c = load_string(required +
                                 "cdp:\n  max_in_flight: 256\n  page_size: 1\n  retry: {max_attempts: 100, "
                                 "base_delay_ms: 5, max_delay_ms: 5}\nsync:\n  poll_interval_s: 86400\n  "
                                 "full_resync_interval_h: 0\nlogging:\n  max_files: 1000\n  max_size_mb: 10000\n");
    EXPECT_EQ(c.cdp.max_in_flight, 256);
    EXPECT_EQ(c.cdp.retry.max_delay_ms, 5);
    EXPECT_EQ(c.sync.poll_interval_s, 86400);
}

TEST(ConfigErrors, BadEnumsAndFormats) {
    const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
        {"sync:\n  mode: sometimes\n", "sync.mode", "mirror or additive"},
        {"logging:\n  format: xml\n", "logging.format", "text or json"},
        {"logging:\n  level: verbose\n", "logging.level", "trace, debug, info"},
        {"cdp:\n  base_url: ftp://cdp.example.com\n", "cdp.base_url", "http:// or https://"},
        {"cdp:\n  base_url: cdp.example.com/openapi\n", "cdp.base_url", "http:// or https://"},
        {"cdp:\n  base_url: https://\n", "cdp.base_url", "no host"},
        {"database:\n  schema: Cdp_Sync\n", "database.schema", "plain identifier"},
        {"database:\n  schema: 1sync\n", "database.schema", "plain identifier"},
        {"database:\n  schema: \"cdp; drop table x\"\n", "database.schema", "plain identifier"},
        {"cdp:\n  max_groups_per_call: -1\n", "cdp.max_groups_per_call", "out of range"},
        {"metrics:\n  listen: localhost\n", "metrics.listen", "HOST:PORT"},
        {"metrics:\n  listen: \"127.0.0.1:70000\"\n", "metrics.listen", "HOST:PORT"},
        {"sync:\n  mode: additive\n  owns_all_static_groups: true\n", "sync.owns_all_static_groups", "additive"},
        {"cdp:\n  token_env: \"not a name\"\n", "cdp.token_env", "environment variable"},
    };
    for (const auto& [yaml, key, hint] : cases) {
        SCOPED_TRACE(yaml);
        const std::string doc = yaml.rfind("database:", 0) == 0
                                    ? "database:\n  dsn: x\n  desired_memberships: y\n" + yaml.substr(10)
                                    : required + yaml;
        const auto e = load_error(doc);
        EXPECT_EQ(e.key(), key) << e.what();
        EXPECT_GT(e.line(), 0) << e.what();
        EXPECT_NE(std::string(e.what()).find(hint), std::string::npos) << e.what();
    }
    EXPECT_EQ(load_string(required + "cdp:\n  base_url: HTTP://127.0.0.1:8080\n").cdp.base_url,
              "HTTP://127.0.0.1:8080");
}

TEST(ConfigErrors, YamlSyntaxErrorHasItsLine) {
    const auto e = load_error("cdp:\n  page_size: 10\n  retry: {max_attempts: 3\nsync:\n  mode: mirror\n");
    EXPECT_EQ(e.key(), "");
    EXPECT_GE(e.line(), 3);
    EXPECT_LE(e.line(), 4);
    EXPECT_NE(std::string(e.what()).find("YAML syntax error"), std::string::npos) << e.what();

    const auto e2 = load_error(required + "cdp:\n  page_size: 10\n bad: indent\n");
    EXPECT_EQ(e2.line(), 6) << e2.what();
    EXPECT_NE(std::string(e2.what()).find("test.yaml:6: YAML syntax error"), std::string::npos) << e2.what();
}

TEST(ConfigErrors, TwoTokenSourcesAreRejected) {
    const auto e = load_error(required + "cdp:\n  token_env: CDP_TOKEN\n  token_file: /run/token\n");
    EXPECT_EQ(e.key(), "cdp.token_file");
    EXPECT_EQ(e.line(), 6);
    EXPECT_NE(std::string(e.what()).find("cdp.token_env"), std::string::npos) << e.what();

    const auto e2 = load_error(required + "cdp:\n  token_command: [get-token]\n  token_env: CDP_TOKEN\n");
    EXPECT_EQ(e2.key(), "cdp.token_env");
    EXPECT_NE(std::string(e2.what()).find("cdp.token_command"), std::string::npos) << e2.what();
}

TEST(ConfigErrors, TokenCommandArgumentsAreNeverEchoed) {
    for (const std::string bad : {"cdp:\n  token_command: [get-token, --secret=hunter2, {x: hunter2}]\n",
                                  "cdp:\n  token_command: []\n", "cdp:\n  token_command: [\"\", hunter2]\n",
                                  "cdp:\n  token_env: hunter2-is-not-a-name\n",
                                  "cdp:\n  token_command: [get-token, --secret=hunter2]\n  token_file: /x\n"}) {
        SCOPED_TRACE(bad);
        const auto e = load_error(required + bad);
        EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    }
}

TEST(ConfigErrors, EveryMistakeIsReportedWithItsLine) {
    const std::string yaml =
        "cdp:\n"                            // 1
        "  page_size: lots\n"               // 2  wrong type
        "  max_in_flight: 0\n"              // 3  out of range
        "  retry:\n"                        // 4
        "    max_atempts: 3\n"              // 5  unknown key
        "database:\n"                       // 6
        "  dsn: \"host=/tmp dbname=x\"\n"    // 7
        "  desired_memberships: SELECT 1\n" // 8
        "  shema: cdp\n"                    // 9  unknown key
        "sync:\n"                           // 10
        "  poll_interval_s: 0\n"            // 11 out of range
        "  prune_groups: sometimes\n"       // 12 wrong type
        "  mode: additive\n"                // 13
        "  owns_all_static_groups: true\n"  // 14 conflicts with additive
        "logging:\n"                        // 15
        "  level: loud\n"                   // 16 not a level
        "sink: {}\n";                       // 17 unknown section
    const auto e = load_error(yaml);
    const std::vector<std::pair<int, std::string>> expected = {
        {2, "cdp.page_size"},   {3, "cdp.max_in_flight"},   {5, "cdp.retry.max_atempts"},
        {9, "database.shema"},  {11, "sync.poll_interval_s"}, {12, "sync.prune_groups"},
        {14, "sync.owns_all_static_groups"}, {16, "logging.level"}, {17, "sink"},
    };
    ASSERT_EQ(e.problems().size(), expected.size()) << e.what();
    for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(e.problems()[i].line, expected[i].first) << e.what();
        EXPECT_EQ(e.problems()[i].key, expected[i].second) << e.what();
    }
    // The first problem is the one file(), line() and key() describe; what() lists all.
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.key(), "cdp.page_size");
    const std::string what = e.what();
    EXPECT_EQ(std::count(what.begin(), what.end(), '\n'), static_cast<long>(expected.size()) - 1) << what;
    EXPECT_NE(what.find("test.yaml:2: cdp.page_size: expected an integer, got 'lots'\n"), std::string::npos) << what;
    EXPECT_NE(what.find("test.yaml:5: cdp.retry.max_atempts: unknown key\n"), std::string::npos) << what;
    EXPECT_NE(what.find("test.yaml:11: sync.poll_interval_s: 0 is out of range"), std::string::npos) << what;
    EXPECT_NE(what.find("test.yaml:17: sink: unknown key"), std::string::npos) << what;
}

TEST(ConfigErrors, AWrongRequiredKeyIsNotAlsoReportedMissing) {
    const auto e = load_error("database:\n  dsn: [a, b]\n  desired_memberships: SELECT 1\n");
    ASSERT_EQ(e.problems().size(), 1u) << e.what();
    EXPECT_EQ(e.key(), "database.dsn");
    EXPECT_EQ(e.line(), 2);

    const auto e2 = load_error("database: 5\ncdp:\n  page_size: 0\n");
    ASSERT_EQ(e2.problems().size(), 2u) << e2.what();
    EXPECT_EQ(e2.problems()[0].key, "database");
    EXPECT_EQ(e2.problems()[1].key, "cdp.page_size");
}

TEST(ConfigFile, LoadFileRecordsSourceAndNamesFileInErrors) {
    TempDir dir;
    const auto good = dir / "good.yaml";
    test::write_file(good, required);
    EXPECT_EQ(load_file(good).source, good);

    const auto bad = dir / "bad.yaml";
    test::write_file(bad, required + "cdp:\n  page_size: 0\n");
    try {
        load_file(bad);
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.file(), bad.string());
        EXPECT_EQ(std::string(e.what()).rfind(bad.string() + ":5: cdp.page_size:", 0), 0u) << e.what();
    }

    try {
        load_file(dir / "missing.yaml");
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("missing.yaml"), std::string::npos) << e.what();
    }
}

TEST(ConfigFile, DefaultPath) {
    {
        ScopedEnv env("CDP_SYNC_CONFIG", "/srv/cdp.yaml");
        EXPECT_EQ(default_path("/opt/explicit.yaml"), "/opt/explicit.yaml");
        EXPECT_EQ(default_path(), "/srv/cdp.yaml");
    }
    {
        ScopedEnv env("CDP_SYNC_CONFIG", nullptr);
        EXPECT_EQ(default_path(), "/etc/cdp-sync/config.yaml");
        EXPECT_EQ(default_path("x.yaml"), "x.yaml");
    }
    {
        ScopedEnv env("CDP_SYNC_CONFIG", "");
        EXPECT_EQ(default_path(), "/etc/cdp-sync/config.yaml");
    }
}

TEST(ConfigFile, ExampleConfigValidatesWithDesignDefaults) {
    const std::filesystem::path path = std::filesystem::path(CDP_SYNC_SOURCE_DIR) / "config/cdp-sync.example.yaml";
    const Config c = load_file(path);
    const Config d;
    EXPECT_EQ(c.cdp.base_url, d.cdp.base_url);
    EXPECT_EQ(c.cdp.token_env, "CDP_TOKEN");
    EXPECT_EQ(c.cdp.rate_limit_qps, d.cdp.rate_limit_qps);
    EXPECT_EQ(c.cdp.max_in_flight, d.cdp.max_in_flight);
    EXPECT_EQ(c.cdp.page_size, d.cdp.page_size);
    EXPECT_EQ(c.cdp.timeout_ms, d.cdp.timeout_ms);
    EXPECT_EQ(c.cdp.retry.max_attempts, d.cdp.retry.max_attempts);
    EXPECT_EQ(c.cdp.retry.base_delay_ms, d.cdp.retry.base_delay_ms);
    EXPECT_EQ(c.cdp.retry.max_delay_ms, d.cdp.retry.max_delay_ms);
    EXPECT_EQ(c.cdp.customer_id_field, d.cdp.customer_id_field);
    EXPECT_EQ(c.database.dsn, "postgresql:///customers");
    EXPECT_FALSE(c.database.desired_groups.empty());
    EXPECT_EQ(c.database.schema, d.database.schema);
    EXPECT_EQ(c.sync.mode, d.sync.mode);
    EXPECT_EQ(c.sync.max_deletes, d.sync.max_deletes);
    EXPECT_EQ(c.logging.file, d.logging.file);
    EXPECT_EQ(c.logging.max_files, d.logging.max_files);
    EXPECT_EQ(c.cdp.max_groups_per_call, d.cdp.max_groups_per_call);
    EXPECT_EQ(c.sync.drift_check, d.sync.drift_check);
    EXPECT_EQ(c.metrics.listen, "127.0.0.1:9464");  // the example turns metrics on

    ScopedEnv env("CDP_TOKEN", "example-token-value");
    EXPECT_EQ(TokenSource(c.cdp).read().reveal(), "example-token-value");
}

TEST(ConfigFile, QuickstartConfigValidates) {
    const Config c = load_file(std::filesystem::path(CDP_SYNC_SOURCE_DIR) / "config/quickstart.yaml");
    EXPECT_EQ(c.cdp.base_url, "http://127.0.0.1:18080/openapi");
    EXPECT_EQ(c.cdp.token_env, "CDP_TOKEN");
    EXPECT_EQ(c.logging.file.rfind("/tmp/", 0), 0u);
    EXPECT_FALSE(c.database.dsn.empty());
}

}  // namespace
}  // namespace cdpsync::config
