// `cdp-sync resync` when a daemon leads the schema: the request goes to the daemon as a row
// in resync_request (plus NOTIFY cdp_sync); this side waits, shows the run's progress, and
// returns the run's exit code. Two processes never apply at once.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace cdpsync::daemon {

struct ResyncAsk {
    bool force = false;
    std::vector<std::string> only_groups;
    bool progress_bar = false;  // stderr is a terminal: one redrawn line instead of phase lines
};

// nullopt: no daemon leads (or it went away before taking the request); the caller runs the
// resync itself. Otherwise the exit code of the daemon's run (as `resync` defines them); the
// run's report goes to `out`, progress to `err`. Throws when PostgreSQL cannot be reached.
std::optional<int> resync_through_daemon(const config::Config& config, const ResyncAsk& ask, std::ostream& out,
                                         std::ostream& err);

}  // namespace cdpsync::daemon
