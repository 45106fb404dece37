#include "daemon/metrics.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

#include "config/logging.hpp"

#ifndef CDP_SYNC_VERSION
#define CDP_SYNC_VERSION "unknown"
#endif

namespace cdpsync::daemon {
namespace {

constexpr const char* kModes[] = {"full", "incremental"};
constexpr const char* kOutcomes[] = {"succeeded", "failed", "blocked", "busy", "interrupted", "error"};

// A label value as the exposition format wants it: backslash, quote and newline escaped.
std::string escaped(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

// Builds the text one metric family at a time: HELP and TYPE, then its samples.
class Exposition {
public:
    void family(const char* name, const char* type, const char* help) {
        name_ = name;
        text_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    template <class V>
    void sample(V value, const std::vector<std::pair<const char*, std::string>>& labels = {}) {
        std::string l;
        for (const auto& [k, v] : labels) l += fmt::format("{}{}=\"{}\"", l.empty() ? "" : ",", k, escaped(v));
        text_ += l.empty() ? fmt::format("{} {}\n", name_, value) : fmt::format("{}{{{}}} {}\n", name_, l, value);
    }
    std::string take() { return std::move(text_); }

private:
    std::string name_;
    std::string text_;
};

void add(cdp::ApiStats& sum, const cdp::ApiStats& s) {
    sum.calls += s.calls;
    sum.retries += s.retries;
    sum.failures += s.failures;
    sum.token_rereads += s.token_rereads;
    sum.http_429 += s.http_429;
    for (const auto& [endpoint, outcomes] : s.attempts_by_endpoint)
        for (const auto& [outcome, n] : outcomes) sum.attempts_by_endpoint[endpoint][outcome] += n;
}

}  // namespace

const char* build_version() { return CDP_SYNC_VERSION; }

std::map<std::string, double> phase_seconds(const sync::RunReport& r) {
    std::map<std::string, double> out{{"total", r.seconds}};
    if (r.plan_seconds > 0) out["plan"] = r.plan_seconds;
    return out;
}

Metrics::Metrics() {
    for (const char* mode : kModes)
        for (const char* outcome : kOutcomes) runs_[{mode, outcome}] = 0;
}

void Metrics::record_run(const sync::RunReport& r, std::chrono::system_clock::time_point ended) {
    const std::string mode = sync::to_string(r.kind);
    ++runs_[{mode, sync::to_string(r.status)}];
    if (r.status == sync::RunStatus::busy) return;  // nothing ran
    for (const auto& [phase, seconds] : phase_seconds(r)) durations_[{mode, phase}] = seconds;
    drift_corrections_ += static_cast<uint64_t>(r.counts.drift_corrections);
    if (r.status == sync::RunStatus::succeeded) {
        last_success_[mode] = std::chrono::duration<double>(ended.time_since_epoch()).count();
        // A resumed apply did not load the source: its desired count is not known.
        if (r.resumed_phase != store::RunPhase::apply) desired_ = r.source.desired;
    }
}

void Metrics::record_run_error(sync::RunKind kind) { ++runs_[{sync::to_string(kind), "error"}]; }

void Metrics::set_store_figures(const store::OpenOpCounts& figures) { store_figures_ = figures; }

void Metrics::set_api_stats(uint64_t engine, const cdp::ApiStats& stats) {
    if (engine_ && *engine_ != engine) add(earlier_engines_, current_engine_);
    engine_ = engine;
    current_engine_ = stats;
}

std::string Metrics::render() const {
    Exposition e;
    e.family("cdp_sync_runs_total", "counter", "Sync runs ended, by mode and outcome (error: the run threw).");
    for (const auto& [key, n] : runs_) e.sample(n, {{"mode", key.first}, {"outcome", key.second}});
    if (!durations_.empty()) {
        e.family("cdp_sync_run_duration_seconds", "gauge", "Duration of the last run's phases, by mode and phase.");
        for (const auto& [key, s] : durations_) e.sample(s, {{"mode", key.first}, {"phase", key.second}});
    }
    if (!last_success_.empty()) {
        e.family("cdp_sync_last_success_timestamp_seconds", "gauge",
                 "Unix time of the last successful run of this process, by mode.");
        for (const auto& [mode, t] : last_success_) e.sample(fmt::format("{:.3f}", t), {{"mode", mode}});
    }
    if (store_figures_) {
        e.family("cdp_sync_ops", "gauge", "Journal ops not done, by state (after the last run).");
        for (const auto& [state, n] : store_figures_->by_state) e.sample(n, {{"state", state}});
    }
    if (store_figures_ || desired_) {
        e.family("cdp_sync_memberships", "gauge",
                 "Memberships the source wants (desired) and the mirror of the CDP holds (mirror).");
        if (desired_) e.sample(*desired_, {{"side", "desired"}});
        if (store_figures_) e.sample(store_figures_->mirror_memberships, {{"side", "mirror"}});
    }
    cdp::ApiStats api = earlier_engines_;
    add(api, current_engine_);
    if (!api.attempts_by_endpoint.empty()) {
        e.family("cdp_sync_calls_total", "counter", "CDP call attempts, by endpoint and outcome.");
        for (const auto& [endpoint, outcomes] : api.attempts_by_endpoint)
            for (const auto& [outcome, n] : outcomes) e.sample(n, {{"endpoint", endpoint}, {"outcome", outcome}});
    }
    e.family("cdp_sync_retries_total", "counter", "CDP call attempts after the first (retries).");
    e.sample(api.retries);
    e.family("cdp_sync_http_429_total", "counter", "CDP call attempts answered 429 Too Many Requests.");
    e.sample(api.http_429);
    e.family("cdp_sync_drift_corrections_total", "counter",
             "Memberships changed in the CDP behind cdp-sync's back and put back.");
    e.sample(drift_corrections_);
    e.family("cdp_sync_rate_limit_qps", "gauge", "The configured CDP call rate limit (cdp.rate_limit_qps).");
    e.sample(rate_limit_qps_);
    e.family("cdp_sync_leader", "gauge", "1 while this process holds the leader lock of its schema.");
    e.sample(leader_ ? 1 : 0);
    e.family("cdp_sync_build_info", "gauge", "Always 1; the version of cdp-sync in a label.");
    e.sample(1, {{"version", build_version()}});
    return e.take();
}

void write_textfile(const std::filesystem::path& path, const std::string& text) {
    const auto tmp = path.string() + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << text;
        out.flush();
        if (!out) throw std::runtime_error("cannot write " + tmp);
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp);
        throw std::runtime_error("cannot rename " + tmp + " to " + path.string() + ": " + ec.message());
    }
}

void write_run_metrics(const config::Config& config, sync::Engine& engine, const sync::RunReport& report) {
    if (config.metrics.textfile.empty()) return;
    try {
        Metrics m;
        m.record_run(report, std::chrono::system_clock::now());
        m.set_api_stats(0, engine.api_stats());
        m.set_store_figures(engine.open_op_counts());
        m.set_rate_limit(config.cdp.rate_limit_qps);
        write_textfile(config.metrics.textfile, m.render());
    } catch (const std::exception& e) {
        logging::logger("daemon")->warn("metrics.textfile {}: {}", config.metrics.textfile, e.what());
    }
}

}  // namespace cdpsync::daemon
