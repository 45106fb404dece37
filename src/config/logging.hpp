// Logging set-up: spdlog with a rotating file plus stderr, text or JSON lines.
// The logger is the one global in cdp-sync; components get a named child with logger(name).
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "config/config.hpp"

namespace cdpsync::logging {

// Configures the sinks and level for every logger (existing and future). Safe to call again
// (SIGHUP reload). Throws std::runtime_error if the log file cannot be opened.
void init(const config::LoggingConfig& cfg, bool log_to_stderr = true);

// Only a stderr sink, at the given level: for CLI commands before the config is read.
void init_stderr(const std::string& level = "info");

// The logger for a component ("http", "cdp", "sync", ...), created on first use with the
// current sinks.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

// Parses "info", "debug", ...; throws std::invalid_argument for an unknown name.
spdlog::level::level_enum parse_level(const std::string& name);

}  // namespace cdpsync::logging
