// `cdp-sync resync` when a daemon leads the schema: the request goes to the daemon as a row
// in resync_request (plus NOTIFY cdp_sync); this side waits, shows the run's progress, and
// returns the run's exit code. Two processes never apply at once.
#pragma once

#include <memory>
#include <optional>
#include <thread>
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

// A progress bar on a terminal for a run this process makes (the no-daemon path of resync):
// a thread with its own connection reads the run and op tables every 300 ms and sets the
// logger's status line (logging::set_status_line, on stderr), which log lines never share
// a line with; removed when destroyed. Draws nothing when PostgreSQL cannot be read.
class TerminalProgress {
public:
    // With `snapshot_id`: the progress of that snapshot instead (plan --full). The bar goes
    // to stderr, whatever `err` is.
    TerminalProgress(const config::Config& config, std::ostream& err, std::optional<int64_t> snapshot_id = {});
    ~TerminalProgress();
    TerminalProgress(const TerminalProgress&) = delete;
    TerminalProgress& operator=(const TerminalProgress&) = delete;

private:
    std::jthread thread_;
};

}  // namespace cdpsync::daemon
