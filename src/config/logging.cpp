#include "config/logging.hpp"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace cdpsync::logging {

namespace {

constexpr const char* text_pattern = "[%Y-%m-%d %H:%M:%S.%e] [%l] [%n] %v";
constexpr const char* journal_text_pattern = "[%l] [%n] %v";  // the journal stamps the time

void append(spdlog::memory_buf_t& dest, std::string_view s) { dest.append(s.data(), s.data() + s.size()); }

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t utf8_sequence(std::string_view s, size_t i) {
    auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    auto in = [&](size_t k, unsigned lo, unsigned hi) { return k < s.size() && at(k) >= lo && at(k) <= hi; };
    const unsigned c = at(i);
    if (c >= 0xC2 && c <= 0xDF) return in(i + 1, 0x80, 0xBF) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return in(i + 1, lo, hi) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return in(i + 1, lo, hi) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
    }
    return 0;
}

// Appends s as a JSON string, quotes included. Bytes that are not UTF-8 become U+FFFD so
// that every line stays parseable whatever a message carries.
void append_json_string(spdlog::memory_buf_t& dest, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    dest.push_back('"');
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
            case '"': append(dest, "\\\""); break;
            case '\\': append(dest, "\\\\"); break;
            case '\n': append(dest, "\\n"); break;
            case '\r': append(dest, "\\r"); break;
            case '\t': append(dest, "\\t"); break;
            case '\b': append(dest, "\\b"); break;
            case '\f': append(dest, "\\f"); break;
            default:
                if (c < 0x20) {
                    const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
                    dest.append(esc, esc + sizeof esc);
                } else {
                    dest.push_back(static_cast<char>(c));
                }
            }
            ++i;
            continue;
        }
        const size_t n = utf8_sequence(s, i);
        if (n == 0) {
            append(dest, "\\ufffd");
            ++i;
        } else {
            append(dest, s.substr(i, n));
            i += n;
        }
    }
    dest.push_back('"');
}

// One JSON object per line: {"ts":"2026-11-25T08:00:00.123Z","level":"info","logger":"http","msg":"..."}
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        using namespace std::chrono;
        const auto since = msg.time.time_since_epoch();
        const auto secs = duration_cast<seconds>(since);
        auto ms = duration_cast<milliseconds>(since - secs).count();
        time_t t = static_cast<time_t>(secs.count());
        if (ms < 0) {  // before 1970: keep the fraction positive
            ms += 1000;
            --t;
        }
        tm utc{};
        gmtime_r(&t, &utc);
        char ts[40];
        const int n = std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                                    utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                                    static_cast<int>(ms));

        append(dest, "{\"ts\":\"");
        dest.append(ts, ts + std::max(0, std::min(n, static_cast<int>(sizeof ts) - 1)));
        append(dest, "\",\"level\":");
        const auto level = spdlog::level::to_string_view(msg.level);
        append_json_string(dest, std::string_view(level.data(), level.size()));
        append(dest, ",\"logger\":");
        append_json_string(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
        append(dest, ",\"msg\":");
        append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
        append(dest, "}\n");
    }

    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// The sd-daemon priority (syslog's numbers) of a level.
char journal_priority(spdlog::level::level_enum level) {
    switch (level) {
    case spdlog::level::critical: return '2';
    case spdlog::level::err: return '3';
    case spdlog::level::warn: return '4';
    case spdlog::level::info: return '6';
    default: return '7';
    }
}

// Prefixes every line of what the wrapped formatter writes with the message's priority, so
// that a message of several lines keeps its level on each (journald splits at newlines).
class JournalFormatter final : public spdlog::formatter {
public:
    explicit JournalFormatter(config::LogFormat format)
        : format_(format),
          inner_(format == config::LogFormat::json
                     ? std::unique_ptr<spdlog::formatter>(std::make_unique<JsonFormatter>())
                     : std::make_unique<spdlog::pattern_formatter>(journal_text_pattern)) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        spdlog::memory_buf_t text;
        inner_->format(msg, text);
        const char prefix[] = {'<', journal_priority(msg.level), '>'};
        dest.append(prefix, prefix + sizeof prefix);
        for (size_t i = 0; i < text.size(); ++i) {
            dest.push_back(text[i]);
            if (text[i] == '\n' && i + 1 < text.size()) dest.append(prefix, prefix + sizeof prefix);
        }
    }

    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JournalFormatter>(format_); }

private:
    config::LogFormat format_;
    std::unique_ptr<spdlog::formatter> inner_;
};

spdlog::sink_ptr make_stderr_sink(config::LogFormat format) {
    auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    err->set_formatter(stderr_is_journal() ? make_journal_formatter(format) : make_formatter(format));
    return err;
}

// The distributing sink also keeps a status line (a terminal's progress bar) below the log:
// cleared before each log line and drawn again after it, under the sink's lock, so the two
// never share a line.
class DistSink : public spdlog::sinks::dist_sink<std::mutex> {
public:
    using dist_sink::dist_sink;

    void set_status_line(const std::string& line) {
        std::lock_guard lock(mutex_);
        clear_status();
        status_ = line;
        draw_status();
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        clear_status();
        dist_sink::sink_it_(msg);
        draw_status();
    }

private:
    void clear_status() {
        if (!status_.empty()) std::fputs("\r\033[K", stderr);
    }
    void draw_status() {
        if (status_.empty()) return;
        std::fputs(("\r" + status_ + "\033[K").c_str(), stderr);
        std::fflush(stderr);
    }

    std::string status_;
};

// Every logger made by logger() writes to one distributing sink; init() swaps the sinks
// behind it under the sink's own lock, so a reload never races a thread that is logging.
struct State {
    std::mutex mu;
    std::shared_ptr<DistSink> dist;
    spdlog::level::level_enum level = spdlog::level::info;
    std::set<std::string> names;  // loggers created here
    bool default_set = false;
    bool flusher_started = false;

    State() {
        dist = std::make_shared<DistSink>(std::vector<spdlog::sink_ptr>{make_stderr_sink(config::LogFormat::text)});
    }
};

State& state() {
    static State s;
    return s;
}

std::shared_ptr<spdlog::logger> make_logger_locked(State& st, const std::string& name) {
    if (auto existing = spdlog::get(name)) return existing;
    auto l = std::make_shared<spdlog::logger>(name, st.dist);
    l->set_level(st.level);
    l->flush_on(spdlog::level::warn);
    try {
        spdlog::register_logger(l);
    } catch (const spdlog::spdlog_ex&) {
        // Registered meanwhile by code that uses spdlog directly: use that one.
        if (auto existing = spdlog::get(name)) return existing;
        throw;
    }
    st.names.insert(name);
    return l;
}

void apply(std::vector<spdlog::sink_ptr> sinks, spdlog::level::level_enum level) {
    State& st = state();
    std::lock_guard lock(st.mu);
    st.dist->set_sinks(std::move(sinks));
    st.level = level;
    for (const auto& name : st.names)
        if (auto l = spdlog::get(name)) l->set_level(level);
    if (!st.default_set) {
        // Once only: spdlog forbids replacing the default logger while others log through it.
        spdlog::set_default_logger(make_logger_locked(st, "cdp-sync"));
        st.default_set = true;
    }
}

}  // namespace

std::unique_ptr<spdlog::formatter> make_formatter(config::LogFormat format) {
    if (format == config::LogFormat::json) return std::make_unique<JsonFormatter>();
    return std::make_unique<spdlog::pattern_formatter>(text_pattern);
}

std::unique_ptr<spdlog::formatter> make_journal_formatter(config::LogFormat format) {
    return std::make_unique<JournalFormatter>(format);
}

bool stderr_is_journal() {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (env == nullptr) return false;
    const std::string_view v(env);
    const auto colon = v.find(':');
    if (colon == std::string_view::npos) return false;
    unsigned long long dev = 0, ino = 0;
    const auto d = std::from_chars(v.data(), v.data() + colon, dev);
    const auto i = std::from_chars(v.data() + colon + 1, v.data() + v.size(), ino);
    if (d.ec != std::errc() || d.ptr != v.data() + colon || i.ec != std::errc() || i.ptr != v.data() + v.size())
        return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

void init(const config::LoggingConfig& cfg, bool log_to_stderr) {
    const auto level = parse_level(cfg.level);
    std::vector<spdlog::sink_ptr> sinks;
    if (!cfg.file.empty()) {
        const std::filesystem::path path(cfg.file);
        std::error_code ec;
        if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
        if (ec) throw std::runtime_error("cannot create the log directory " + path.parent_path().string() + ": " + ec.message());
        try {
            sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
                cfg.file, static_cast<size_t>(cfg.max_size_mb) * 1024 * 1024, static_cast<size_t>(cfg.max_files)));
        } catch (const spdlog::spdlog_ex& e) {
            throw std::runtime_error("cannot open the log file " + cfg.file + ": " + e.what());
        }
        sinks.back()->set_formatter(make_formatter(cfg.format));
    }
    if (log_to_stderr) sinks.push_back(make_stderr_sink(cfg.format));
    apply(std::move(sinks), level);

    State& st = state();
    std::lock_guard lock(st.mu);
    if (!st.flusher_started && !cfg.file.empty()) {
        spdlog::flush_every(std::chrono::seconds(1));
        st.flusher_started = true;
    }
}

void init_stderr(const std::string& level) {
    apply({make_stderr_sink(config::LogFormat::text)}, parse_level(level));
}

void init_sinks(std::vector<spdlog::sink_ptr> sinks, const std::string& level, config::LogFormat format) {
    for (auto& s : sinks) s->set_formatter(make_formatter(format));
    apply(std::move(sinks), parse_level(level));
}

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
    State& st = state();
    std::lock_guard lock(st.mu);
    return make_logger_locked(st, name);
}

spdlog::level::level_enum parse_level(const std::string& name) {
    std::string n = name;
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
    if (n == "trace") return spdlog::level::trace;
    if (n == "debug") return spdlog::level::debug;
    if (n == "info") return spdlog::level::info;
    if (n == "warn" || n == "warning") return spdlog::level::warn;
    if (n == "error" || n == "err") return spdlog::level::err;
    if (n == "critical") return spdlog::level::critical;
    if (n == "off") return spdlog::level::off;
    throw std::invalid_argument("unknown log level '" + name + "'");
}

void set_status_line(const std::string& line) { state().dist->set_status_line(line); }

}  // namespace cdpsync::logging
