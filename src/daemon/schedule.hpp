// Timing of the daemon's periodic work, kept apart from the loop so it can be tested with a
// fake clock: every function takes `now` instead of reading a clock.
//
// | thing         | period                       | jitter | first run                          |
// |---------------|------------------------------|--------|------------------------------------|
// | poll          | sync.poll_interval_s         | 10 %   | immediately after becoming leader  |
// | full resync   | sync.full_resync_interval_h  | 1 %    | one period after the last full run |
// | standby check | min(poll, 5 s)               | 0      | immediately                        |
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <spdlog/logger.h>

namespace cdpsync::daemon {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::milliseconds;

enum class FirstRun { immediately, after_period };

// A named periodic task: due() once its next time has come. A zero period means never.
class Periodic {
public:
    Periodic(std::string name, Duration period, double jitter, FirstRun first, Clock::time_point now,
             uint64_t seed = 1);

    const std::string& name() const { return name_; }
    Duration period() const { return period_; }
    bool enabled() const { return period_.count() > 0; }
    bool due(Clock::time_point now) const { return enabled() && now >= next_; }
    Clock::time_point next() const { return next_; }
    // The work ran (or was skipped) at `now`: the next time is one jittered period later.
    void done(Clock::time_point now);
    // Due at once (SIGUSR1, a NOTIFY, a queued request).
    void trigger(Clock::time_point now) { next_ = now; }
    // Schedules the next time as `since_last` after the last run (from the run history).
    void last_ran_ago(Duration since_last, Clock::time_point now);
    // A new period (SIGHUP): the next time moves by the difference, never into the past of `now`.
    void set_period(Duration period, Clock::time_point now);

private:
    Duration jittered();

    std::string name_;
    Duration period_;
    double jitter_;
    Clock::time_point next_;
    std::mt19937_64 rng_;
};

// Exponential backoff between attempts at something that keeps failing: base, 2 base, ...
// capped at max; reset() after a success.
class Backoff {
public:
    Backoff(Duration base, Duration max) : base_(base), max_(max) {}
    Duration next();
    void reset() { failures_ = 0; }
    int failures() const { return failures_; }
    void set_limits(Duration base, Duration max) { base_ = base, max_ = max; }

private:
    Duration base_, max_;
    int failures_ = 0;
};

// The state of one dependency (PostgreSQL, the CDP, the sync runs), logged once per change
// of state, not once per attempt: the first failure says what failed and what happens next,
// the recovery says how long it was down.
class Condition {
public:
    Condition(std::string what, std::shared_ptr<spdlog::logger> log) : what_(std::move(what)), log_(std::move(log)) {}

    // Returns true when this is a change of state (the caller may also act on it).
    bool failed(const std::string& why, const std::string& next_step, Clock::time_point now);
    bool ok(Clock::time_point now);
    bool is_down() const { return down_; }
    int attempts() const { return attempts_; }

private:
    std::string what_;
    std::shared_ptr<spdlog::logger> log_;
    bool down_ = false;
    int attempts_ = 0;
    Clock::time_point since_{};
};

// systemd's watchdog fed on progress: while a run is active, a ping only when its progress
// counter (CDP calls answered) moved within `stall_limit`, so a run stuck in a PostgreSQL
// call or a hung call stops the pings and systemd restarts the service. Without a run the
// loop itself coming round is the proof of life.
class ProgressWatchdog {
public:
    explicit ProgressWatchdog(Duration stall_limit) : stall_limit_(stall_limit) {}

    // Asked at every watchdog tick: send WATCHDOG=1 now?
    bool should_feed(Clock::time_point now, bool run_active, uint64_t progress);

private:
    Duration stall_limit_;
    std::optional<uint64_t> last_progress_;
    Clock::time_point last_moved_{};
};

}  // namespace cdpsync::daemon
