#include "daemon/schedule.hpp"

#include <algorithm>

namespace cdpsync::daemon {

Periodic::Periodic(std::string name, Duration period, double jitter, FirstRun first, Clock::time_point now,
                   uint64_t seed)
    : name_(std::move(name)), period_(period), jitter_(jitter), next_(now), rng_(seed) {
    if (first == FirstRun::after_period) next_ = now + jittered();
}

Duration Periodic::jittered() {
    if (jitter_ <= 0 || period_.count() <= 0) return period_;
    const double spread = static_cast<double>(period_.count()) * jitter_;
    std::uniform_real_distribution<double> d(-spread, spread);
    return std::max(Duration(1), period_ + Duration(static_cast<int64_t>(d(rng_))));
}

void Periodic::done(Clock::time_point now) { next_ = now + jittered(); }

void Periodic::last_ran_ago(Duration since_last, Clock::time_point now) {
    next_ = now + std::max(Duration(0), period_ - since_last);
}

void Periodic::set_period(Duration period, Clock::time_point now) {
    const auto delta = period - period_;
    period_ = period;
    next_ = std::max(now, next_ + delta);
}

Duration Backoff::next() {
    Duration d = base_;
    for (int i = 0; i < failures_ && d < max_; ++i) d *= 2;
    ++failures_;
    return std::min(d, max_);
}

bool Condition::failed(const std::string& why, const std::string& next_step, Clock::time_point now) {
    ++attempts_;
    if (down_) return false;
    down_ = true;
    since_ = now;
    log_->error("{} failed: {}; {} (logged again only when this changes)", what_, why, next_step);
    return true;
}

bool Condition::ok(Clock::time_point now) {
    if (!down_) {
        attempts_ = 0;
        return false;
    }
    const double secs = std::chrono::duration<double>(now - since_).count();
    log_->info("{} is back after {:.0f} s and {} failed attempt(s)", what_, secs, attempts_);
    down_ = false;
    attempts_ = 0;
    return true;
}

bool ProgressWatchdog::should_feed(Clock::time_point now, bool run_active, uint64_t progress) {
    if (!run_active) {
        last_progress_.reset();
        return true;
    }
    if (last_progress_ != progress) {  // a run that just started counts as moving
        last_progress_ = progress;
        last_moved_ = now;
    }
    return now - last_moved_ < stall_limit_;
}

}  // namespace cdpsync::daemon
