// The run in progress described from outside the engine, from the run and op tables: the
// phase and, while applying, done/total, rate and ETA; while snapshotting, groups and pages.
// The daemon's loop asks every few seconds (a timer) and logs the line, puts it in
// systemd's STATUS= and the leader's phase. It changes nothing the engine reads.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "store/status.hpp"

namespace cdpsync::daemon {

class RunMonitor {
public:
    explicit RunMonitor(std::string label) : label_(std::move(label)) {}

    // The line for `progress` read at `now`; the rate counts from the previous call.
    std::string line(const store::RunProgress& progress, std::chrono::steady_clock::time_point now);

private:
    std::string label_;
    int64_t last_done_ = -1;
    std::chrono::steady_clock::time_point last_tick_{};
};

}  // namespace cdpsync::daemon
