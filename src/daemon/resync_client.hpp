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

// How handing a resync to the daemon ended; the caller decides from `kind` alone.
struct DaemonResync {
    enum class Kind {
        not_queued,  // no daemon leads, PostgreSQL was unreachable, or the daemon went away
                     // and the request was withdrawn: nobody will run it, the caller may
        finished,    // the daemon ran it: exit_code is the run's (as `resync` defines them)
        lost,        // queued, then waiting for it failed: the daemon may still run it, so
                     // the caller must not run it too
    };
    Kind kind = Kind::not_queued;
    int exit_code = 1;
    std::string error;  // lost, not_queued (except when no daemon leads): why, one line
};

// Asks the leading daemon for a full resync and waits for it; the run's report goes to
// `out`, progress to `err`. Never throws: a failure before the request is queued is
// not_queued, one after it is lost.
DaemonResync resync_through_daemon(const config::Config& config, const ResyncAsk& ask, std::ostream& out,
                                   std::ostream& err);

// A progress bar on a terminal for a run this process makes (the no-daemon path of resync):
// a thread with its own connection reads the run and op tables every 300 ms and sets the
// logger's status line (logging::set_status_line, on stderr), which log lines never share
// a line with; removed when destroyed. Draws nothing when PostgreSQL cannot be read.
// A thread of its own because its queries block: the run has the worker, and the caller's
// loop must stay free for the stop signals.
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
