// Configuration: the YAML file described in shared/DESIGN.md, validated on load.
//
// Every key has a default except database.dsn, database.desired_memberships and the token
// source (one of cdp.token_env, cdp.token_file, cdp.token_command, or a credential in
// $CREDENTIALS_DIRECTORY/token). Every unknown key, value of the wrong type or out of range
// is collected; loading then throws one ConfigError listing them all, each with its key and
// line of the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace cdpsync::config {

struct RetryConfig {
    int max_attempts = 6;        // 1..100, including the first attempt
    int base_delay_ms = 200;     // 1..600000
    int max_delay_ms = 30000;    // >= base_delay_ms
};

struct CdpConfig {
    std::string base_url = "https://cdpma.baiyaodajiankang.com/openapi";
    std::string token_env;                   // name of an environment variable
    std::string token_file;                  // path of a file holding the token
    std::vector<std::string> token_command;  // argv; its stdout is the token
    std::string ca_file;                     // extra CA bundle (PEM); verification is always on
    double rate_limit_qps = 10;              // 0.001..1e9; never exceeded in any 1-second window
    int max_in_flight = 8;                   // 1..256
    int page_size = 200;                     // 1..10000
    int timeout_ms = 10000;                  // 1..600000, per request attempt
    RetryConfig retry;
    // Member record field holding the customer id; "" = customerId when the record has it,
    // else id (the real CDP may put a membership row id in `id`).
    std::string customer_id_field;
    int max_groups_per_call = 0;             // 0..10000; cap on customerGroupIdList (0 = none known)
    std::string folder;                      // folder path ("A/B") managed groups live in; "" = root
};

struct DatabaseConfig {
    std::string dsn;                  // libpq connection string (required)
    std::string desired_memberships;  // SQL returning (customer_id bigint, group_name text) (required)
    std::string desired_groups;       // optional SQL returning (name, description, folder)
    std::string change_query;         // optional cheap change detector
    std::string schema = "cdp_sync";  // a plain SQL identifier
};

enum class SyncMode { mirror, additive };

struct SyncConfig {
    SyncMode mode = SyncMode::mirror;
    int poll_interval_s = 60;          // 1..86400
    double full_resync_interval_h = 24;  // 0..87600 (10 years); 0 disables the periodic full resync
    int64_t max_deletes = 500;         // >= 0
    bool owns_all_static_groups = false;
    bool prune_groups = false;
    bool drift_check = true;            // each cycle compares simpleQuery's customerTotal with the mirror
    double permanent_retry_interval_h = 24;  // 0..87600: ops refused permanently are tried again after this
};

struct MetricsConfig {
    std::string listen;    // "HOST:PORT" serving Prometheus text on /metrics; "" = off
    std::string textfile;  // write the same text to this file (node_exporter textfile collector); "" = off
};

enum class LogFormat { text, json };

struct LoggingConfig {
    std::string file = "/var/log/cdp-sync/cdp-sync.log";  // "" logs to stderr only
    std::string level = "info";     // trace, debug, info, warn, error, critical, off
    LogFormat format = LogFormat::text;
    int max_size_mb = 50;           // 1..10000
    int max_files = 10;             // 1..1000
};

struct Config {
    std::filesystem::path source;   // the file it was loaded from ("" when from a string)
    CdpConfig cdp;
    DatabaseConfig database;
    SyncConfig sync;
    MetricsConfig metrics;
    LoggingConfig logging;
};

// One mistake in a configuration file: the line (1-based, 0 if unknown), the dotted key
// ("" when about the file as a whole) and what is wrong.
struct ConfigProblem {
    int line = 0;
    std::string key;
    std::string problem;
};

// A bad configuration. file(), line() and key() describe the first problem; problems() has
// them all, in the order of the file; what() lists them one per line as
// "FILE:LINE: KEY: PROBLEM".
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string file, int line, std::string key, const std::string& problem);
    // problems must not be empty.
    ConfigError(std::string file, std::vector<ConfigProblem> problems);
    const std::string& file() const { return file_; }
    int line() const { return problems_.front().line; }
    const std::string& key() const { return problems_.front().key; }
    const std::vector<ConfigProblem>& problems() const { return problems_; }

private:
    std::string file_;
    std::vector<ConfigProblem> problems_;
};

// Loads and validates. Throws ConfigError.
Config load_file(const std::filesystem::path& path);
Config load_string(const std::string& yaml, const std::string& source_name = "<string>");

// The path to use: explicit --config, else $CDP_SYNC_CONFIG, else /etc/cdp-sync/config.yaml.
std::filesystem::path default_path(const std::string& explicit_path = "");

}  // namespace cdpsync::config
