// `cdp-sync check`: validates the config, reaches PostgreSQL (and runs the configured queries
// without their rows), reads the token and calls the CDP once; every finding in plain words.
#pragma once

#include <filesystem>
#include <ostream>

namespace cdpsync::daemon {

// Prints one line per check ("ok  ..." / "FAIL ...: why, what to do"). Returns 0 when all
// passed, 1 when one failed, 2 when the configuration itself is invalid.
int run_checks(const std::filesystem::path& config_path, std::ostream& out);

}  // namespace cdpsync::daemon
