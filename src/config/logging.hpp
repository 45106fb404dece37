// Logging set-up: spdlog with a rotating file plus stderr, text or JSON lines.
// The logger is the one global in cdp-sync; components get a named child with logger(name).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "config/config.hpp"

namespace cdpsync::logging {

// Configures the sinks and level for every logger (existing and future). Safe to call again
// (SIGHUP reload). Throws std::runtime_error if the log file cannot be opened.
void init(const config::LoggingConfig& cfg, bool log_to_stderr = true);

// Only a stderr sink, at the given level: for CLI commands before the config is read.
void init_stderr(const std::string& level = "info");

// Installs the given sinks (each gets the text or JSON formatter) for every logger, like
// init(): for tests that capture log output, e.g. with an ostream_sink_mt.
void init_sinks(std::vector<spdlog::sink_ptr> sinks, const std::string& level = "info",
                config::LogFormat format = config::LogFormat::text);

// The formatter init() uses: text "[2026-11-25 08:00:00.123] [info] [http] message" (local
// time) or one JSON object per line {"ts" (UTC, ms), "level", "logger", "msg"}.
std::unique_ptr<spdlog::formatter> make_formatter(config::LogFormat format);

// Whether stderr is the systemd journal: $JOURNAL_STREAM holds stderr's "DEVICE:INODE", as
// systemd sets it for a service whose stderr it connects to the journal (sd-daemon(3)).
bool stderr_is_journal();

// The stderr formatter init() uses when stderr_is_journal(): every line starts with its
// sd-daemon priority ("<2>" critical, "<3>" error, "<4>" warn, "<6>" info, "<7>" debug and
// trace), so the journal records the level (journalctl -p err); text lines carry no timestamp
// of their own ("<6>[info] [http] message"), JSON lines are as make_formatter() writes them.
std::unique_ptr<spdlog::formatter> make_journal_formatter(config::LogFormat format);

// The logger for a component ("http", "cdp", "sync", ...), created on first use with the
// current sinks.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

// A line kept at the bottom of stderr (a terminal's progress bar), below the log lines: it
// is cleared before each log line and drawn again after it. "" removes it.
void set_status_line(const std::string& line);

// Parses "info", "debug", ...; throws std::invalid_argument for an unknown name.
spdlog::level::level_enum parse_level(const std::string& name);

}  // namespace cdpsync::logging
