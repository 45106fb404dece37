// The daemon's figures in the Prometheus text exposition format (version 0.0.4), kept in
// memory and rendered on demand: /metrics (metrics_server.hpp) and metrics.textfile read
// the same text. Nothing here touches PostgreSQL: the store's figures are read after each
// run on the engine's thread and handed in.
//
// | metric                                   | type    | labels            |
// |------------------------------------------|---------|-------------------|
// | cdp_sync_runs_total                      | counter | mode, outcome     |
// | cdp_sync_run_duration_seconds            | gauge   | mode, phase       |
// | cdp_sync_last_success_timestamp_seconds  | gauge   | mode              |
// | cdp_sync_ops                             | gauge   | state             |
// | cdp_sync_memberships                     | gauge   | side              |
// | cdp_sync_calls_total                     | counter | endpoint, outcome |
// | cdp_sync_retries_total                   | counter |                   |
// | cdp_sync_http_429_total                  | counter |                   |
// | cdp_sync_drift_corrections_total         | counter |                   |
// | cdp_sync_rate_limit_qps                  | gauge   |                   |
// | cdp_sync_leader                          | gauge   |                   |
// | cdp_sync_build_info                      | gauge   | version           |
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "cdp/api.hpp"
#include "config/config.hpp"
#include "store/gauges.hpp"
#include "sync/engine.hpp"

namespace cdpsync::daemon {

// The version cdp_sync_build_info reports.
const char* build_version();

// A run's phase durations in seconds, by phase name ("total" always).
std::map<std::string, double> phase_seconds(const sync::RunReport& report);

class Metrics {
public:
    Metrics();

    // A run that ended with a report, at wall-clock time `ended`.
    void record_run(const sync::RunReport& report, std::chrono::system_clock::time_point ended);
    // A run that threw (PostgreSQL gone, the engine could not start): outcome "error".
    void record_run_error(sync::RunKind kind);
    void set_store_figures(const store::OpenOpCounts& figures);
    // The API stats of the engine numbered `engine`: a new number means a new engine, whose
    // counts add to those of the engines before it.
    void set_api_stats(uint64_t engine, const cdp::ApiStats& stats);
    void set_leader(bool leader) { leader_ = leader; }
    void set_rate_limit(double qps) { rate_limit_qps_ = qps; }

    std::string render() const;

private:
    using Key = std::pair<std::string, std::string>;
    std::map<Key, uint64_t> runs_;                 // (mode, outcome)
    std::map<Key, double> durations_;              // (mode, phase)
    std::map<std::string, double> last_success_;  // mode -> unix seconds
    std::optional<store::OpenOpCounts> store_figures_;
    std::optional<int64_t> desired_;
    uint64_t drift_corrections_ = 0;
    cdp::ApiStats earlier_engines_, current_engine_;
    std::optional<uint64_t> engine_;
    bool leader_ = false;
    double rate_limit_qps_ = 0;
};

// Writes `text` to `path` atomically (a temporary file beside it, then rename), so that a
// reader (node_exporter's textfile collector) never sees half a file. Throws on failure.
void write_textfile(const std::filesystem::path& path, const std::string& text);

// The figures of one run made outside the daemon (`run --once`, `resync`) into
// metrics.textfile, when it is set; a failure is logged, not thrown.
void write_run_metrics(const config::Config& config, sync::Engine& engine, const sync::RunReport& report);

}  // namespace cdpsync::daemon
