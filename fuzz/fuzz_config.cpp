// Fuzzes config::load_string with arbitrary text. A bad file must be refused with
// ConfigError (config.hpp: "Throws ConfigError"); any other exception type escaping is a
// finding, and so is a Config accepted with a value outside the range config.hpp documents.
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

#include "config/config.hpp"

using namespace cdpsync::config;

namespace {

[[noreturn]] void finding(const std::string& what) {
    std::fprintf(stderr, "fuzz_config: %s\n", what.c_str());
    std::abort();
}

void check_range(const char* key, double v, double lo, double hi) {
    if (v >= lo && v <= hi) return;
    char text[200];
    std::snprintf(text, sizeof text, "accepted %s = %g outside %g..%g", key, v, lo, hi);
    finding(text);
}

bool plain_identifier(const std::string& s) {
    if (s.empty() || s.size() > 63 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

// What config.hpp promises of a Config that load_string returned.
void check(const Config& c) {
    if (c.database.dsn.empty() || c.database.desired_memberships.empty())
        finding("accepted a config without database.dsn or database.desired_memberships");
    const int sources = !c.cdp.token_env.empty() + !c.cdp.token_file.empty() + !c.cdp.token_command.empty();
    if (sources > 1) finding("accepted more than one token source");
    if (!c.cdp.token_command.empty() && c.cdp.token_command[0].empty()) finding("accepted an empty program name");
    std::string url = c.cdp.base_url;  // the scheme is case-insensitive
    for (auto& ch : url) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) finding("accepted base_url without http(s)://");
    // Beyond config.hpp's ranges, what the consumers can convert without overflow:
    // http::RateLimiter casts floor(qps) to size_t and 1/qps seconds to steady_clock ticks
    // (int64 ns); the daemon casts full_resync_interval_h * 3.6e6 to int64 milliseconds.
    check_range("cdp.rate_limit_qps", c.cdp.rate_limit_qps, 1.0 / 9.2e9, 1.8e19);
    check_range("cdp.max_in_flight", c.cdp.max_in_flight, 1, 256);
    check_range("cdp.page_size", c.cdp.page_size, 1, 10000);
    check_range("cdp.timeout_ms", c.cdp.timeout_ms, 1, 600000);
    check_range("cdp.retry.max_attempts", c.cdp.retry.max_attempts, 1, 100);
    check_range("cdp.retry.base_delay_ms", c.cdp.retry.base_delay_ms, 1, 600000);
    if (c.cdp.retry.max_delay_ms < c.cdp.retry.base_delay_ms) finding("accepted max_delay_ms < base_delay_ms");
    check_range("cdp.max_groups_per_call", c.cdp.max_groups_per_call, 0, 10000);
    if (!plain_identifier(c.database.schema)) finding("accepted database.schema '" + c.database.schema + "'");
    check_range("sync.poll_interval_s", c.sync.poll_interval_s, 1, 86400);
    check_range("sync.full_resync_interval_h", c.sync.full_resync_interval_h, 0, 9.2e18 / 3.6e6);
    if (c.sync.max_deletes < 0) finding("accepted a negative sync.max_deletes");
    check_range("sync.permanent_retry_interval_h", c.sync.permanent_retry_interval_h, 0, 87600);
    if (c.sync.mode == SyncMode::additive && c.sync.owns_all_static_groups)
        finding("accepted sync.mode additive with owns_all_static_groups");
    check_range("logging.max_size_mb", c.logging.max_size_mb, 1, 10000);
    check_range("logging.max_files", c.logging.max_files, 1, 1000);
    static const char* const levels[] = {"trace", "debug", "info", "warn", "warning",
                                           "error", "err", "critical", "off"};
    bool level_ok = false;
    for (const char* l : levels) level_ok = level_ok || c.logging.level == l;
    if (!level_ok) finding("accepted logging.level '" + c.logging.level + "'");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
    const std::string text(reinterpret_cast<const char*>(bytes), size);
    try {
        check(load_string(text, "fuzz.yaml"));
    } catch (const ConfigError& e) {
        if (e.problems().empty()) finding("ConfigError listing no problem");
        for (const auto& p : e.problems())
            if (p.line < 0) finding(std::string("ConfigError with a negative line: ") + e.what());
    } catch (const std::exception& e) {
        finding(std::string("load_string threw ") + typeid(e).name() + " (not ConfigError): " + e.what());
    }
    return 0;
}
