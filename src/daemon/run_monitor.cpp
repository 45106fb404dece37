#include "daemon/run_monitor.hpp"

#include <fmt/format.h>

namespace cdpsync::daemon {

std::string RunMonitor::line(const store::RunProgress& p, std::chrono::steady_clock::time_point now) {
    std::string line = fmt::format("run {} ({}) {}", p.run_id, label_, store::to_string(p.phase));
    if (p.phase == store::RunPhase::apply && p.total > 0) {
        const double secs = std::chrono::duration<double>(now - last_tick_).count();
        const double rate = last_done_ >= 0 && secs > 0 ? static_cast<double>(p.done - last_done_) / secs : 0;
        line += fmt::format(": {}/{} ops, {:.1f} ops/s", p.done, p.total, rate);
        if (rate > 0) line += fmt::format(", ETA {:.0f} s", static_cast<double>(p.total - p.done) / rate);
        last_done_ = p.done;
    } else if (p.phase == store::RunPhase::snapshot && p.groups_total > 0) {
        line += fmt::format(": {}/{} groups, {} member pages, {:.0f} s into the run", p.groups_done, p.groups_total,
                            p.pages, p.seconds);
    } else {
        line += fmt::format(", {:.0f} s into the run", p.seconds);
    }
    last_tick_ = now;
    return line;
}

}  // namespace cdpsync::daemon
