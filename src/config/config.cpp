#include "config/config.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "config/logging.hpp"
#include "config/text.hpp"

namespace cdpsync::config {

namespace {

std::string error_text(const std::string& file, int line, const std::string& key,
                       const std::string& problem) {
    std::string s = file;
    if (line > 0) s += ":" + std::to_string(line);
    s += ": ";
    if (!key.empty()) s += key + ": ";
    return s + problem;
}

std::string all_text(const std::string& file, const std::vector<ConfigProblem>& problems) {
    std::string s;
    for (const auto& p : problems) {
        if (!s.empty()) s += "\n";
        s += error_text(file, p.line, p.key, p.problem);
    }
    return s;
}

int line_of(const YAML::Node& n) {
    if (!n.IsDefined()) return 0;
    const YAML::Mark m = n.Mark();
    return m.is_null() ? 0 : m.line + 1;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// A value as it appears in an error: short, and only ever for keys that hold no secret.
std::string shown(const std::string& v) {
    if (v.size() <= 40) return "'" + v + "'";
    return "'" + v.substr(0, 37) + "...'";
}

// One key of the file being read: its dotted path, its value and where it is.
struct Field {
    std::string key;
    YAML::Node value;
    int line;      // of the value, or of the key when the value has no position
    int key_line;  // of the key
};

// Thrown by Loader::fail() to abandon the key being read; each() records it and goes on
// with the next key, so one load reports every mistake.
struct Problem {
    ConfigProblem what;
};

class Loader {
public:
    explicit Loader(std::string file) : file_(std::move(file)) {}

    // Throws ConfigError listing every problem found.
    Config load(const YAML::Node& root) {
        Config cfg = read(root);
        if (!problems_.empty()) throw ConfigError(file_, std::move(problems_));
        return cfg;
    }

private:
    Config read(const YAML::Node& root) {
        Config cfg;
        if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
            report(line_of(root), "", "the file must be a mapping with the sections cdp, database, sync, metrics, logging");
            return cfg;
        }

        each(root, "", [&](const Field& f, const std::string& name) {
            if (name == "cdp") cdp(f, cfg.cdp);
            else if (name == "database") database(f, cfg.database);
            else if (name == "sync") sync(f, cfg.sync);
            else if (name == "metrics") metrics(f, cfg.metrics);
            else if (name == "logging") logging(f, cfg.logging);
            else return false;
            return true;
        });

        // Required keys, reported together so an empty file says everything it lacks; a key
        // already reported as wrong is not also reported as missing.
        std::vector<std::pair<std::string, int>> missing;
        if (cfg.database.dsn.empty() && !reported("database.dsn"))
            missing.emplace_back("database.dsn", dsn_line_);
        if (cfg.database.desired_memberships.empty() && !reported("database.desired_memberships"))
            missing.emplace_back("database.desired_memberships", memberships_line_);
        if (!missing.empty()) {
            std::string problem = "is required";
            for (size_t i = 1; i < missing.size(); ++i)
                problem += (i == 1 ? "; also required: " : ", ") + missing[i].first;
            report(missing[0].second, missing[0].first, problem);
        }
        return cfg;
    }

    // Abandons the key being read (see Problem); the problem is recorded by each().
    [[noreturn]] void fail(int line, const std::string& key, const std::string& problem) const {
        throw Problem{{line, key, problem}};
    }

    // Whether a problem was recorded for key or for the section holding it.
    bool reported(const std::string& key) const {
        return std::any_of(problems_.begin(), problems_.end(), [&](const ConfigProblem& p) {
            return p.key == key || (!p.key.empty() && key.rfind(p.key + ".", 0) == 0);
        });
    }

    // Records a problem and goes on (for checks across keys, made after they are read).
    void report(int line, const std::string& key, const std::string& problem) {
        problems_.push_back({line, key, problem});
    }

    // Calls f(field, name) for each key of the mapping `map` (a section); f returns false for
    // a key it does not know. A null node (an empty section) has no keys. A problem with one
    // key is recorded and the next key is read.
    template <class F>
    void each(const YAML::Node& map, const std::string& path, F&& f) {
        if (!map.IsDefined() || map.IsNull()) return;
        if (!map.IsMap()) fail(line_of(map), path, "expected a mapping of keys");
        std::set<std::string> seen;
        for (const auto& kv : map) {
            // yaml-cpp's iterator yields a proxy by value: copy the nodes out of it.
            const YAML::Node k = kv.first;
            const YAML::Node v = kv.second;
            const int key_line = line_of(k);
            std::string name = k.IsScalar() ? k.Scalar() : std::string("<complex key>");
            std::string key = path.empty() ? name : path + "." + name;
            if (!k.IsScalar()) {
                report(key_line, key, "unknown key");
                continue;
            }
            if (!seen.insert(name).second) {
                report(key_line, key, "appears twice");
                continue;
            }
            // An empty value is marked where the parser stopped, often the next line.
            const int value_line = v.IsNull() ? key_line : line_of(v);
            Field field{key, v, value_line > 0 ? value_line : key_line, key_line};
            try {
                if (!f(field, name)) report(key_line, key, "unknown key");
            } catch (const Problem& p) {
                problems_.push_back(p.what);
            }
        }
    }

    // The text of a scalar; `what` names the expected type for the error.
    const std::string& scalar(const Field& f, const char* what) {
        if (!f.value.IsScalar()) fail(f.line, f.key, std::string("expected ") + what);
        return f.value.Scalar();
    }

    static bool quoted(const Field& f) { return f.value.Tag() == "!"; }

    std::string str(const Field& f) {
        if (f.value.IsNull()) return {};
        return scalar(f, "a string");
    }

    int64_t integer(const Field& f, int64_t lo, int64_t hi) {
        const std::string& s = scalar(f, "an integer");
        int64_t v = 0;
        const char* b = s.data();
        const char* e = s.data() + s.size();
        if (b != e && *b == '+') ++b;
        auto [p, ec] = std::from_chars(b, e, v);
        if (quoted(f) || s.empty() || ec == std::errc::invalid_argument || p != e)
            fail(f.line, f.key, "expected an integer, got " + shown(s));
        if (ec == std::errc::result_out_of_range || v < lo || v > hi)
            fail(f.line, f.key, s + " is out of range (" + range(lo, hi) + ")");
        return v;
    }

    int int32(const Field& f, int64_t lo, int64_t hi = INT_MAX) {
        return static_cast<int>(integer(f, lo, std::min<int64_t>(hi, INT_MAX)));
    }

    // A finite number in lo..hi. The bounds keep what the consumers derive from it in range
    // (the rate limiter's 1/qps in clock ticks, the daemon's interval in int64 milliseconds).
    double number(const Field& f, double lo, double hi) {
        const std::string& s = scalar(f, "a number");
        double v = 0;
        const char* b = s.data();
        const char* e = s.data() + s.size();
        if (b != e && *b == '+') ++b;
        auto [p, ec] = std::from_chars(b, e, v);
        if (quoted(f) || s.empty() || ec != std::errc() || p != e || !std::isfinite(v))
            fail(f.line, f.key, "expected a number, got " + shown(s));
        if (v < lo || v > hi)
            fail(f.line, f.key, s + " is out of range (must be " + trim_num(lo) + ".." + trim_num(hi) + ")");
        return v;
    }

    bool boolean(const Field& f) {
        const std::string s = lower(scalar(f, "true or false"));
        if (!quoted(f)) {
            if (s == "true" || s == "yes" || s == "on") return true;
            if (s == "false" || s == "no" || s == "off") return false;
        }
        fail(f.line, f.key, "expected true or false, got " + shown(f.value.Scalar()));
    }

    static std::string range(int64_t lo, int64_t hi) {
        if (hi >= INT_MAX) return "must be >= " + std::to_string(lo);
        return "must be " + std::to_string(lo) + ".." + std::to_string(hi);
    }
    static std::string trim_num(double v) {
        std::ostringstream os;
        os << v;
        return os.str();
    }

    // The token sources set so far: at most one may be.
    struct TokenSources {
        int count = 0;
        std::string first;
    };
    // Where the retry delays were set, for the check across them.
    struct RetryLines {
        int base_delay = 0, max_delay = 0;
        bool max_delay_set = false;
    };

    void cdp(const Field& section, CdpConfig& c) {
        TokenSources sources;
        RetryLines retry_lines;
        each(section.value, section.key, [&](const Field& f, const std::string& name) {
            if (name == "retry") {
                retry(f, c.retry, retry_lines);
                return true;
            }
            return token_key(f, name, c, sources) || cdp_key(f, name, c);
        });
        if (c.retry.max_delay_ms < c.retry.base_delay_ms) {
            report(retry_lines.max_delay_set ? retry_lines.max_delay : retry_lines.base_delay,
                   section.key + ".retry.max_delay_ms",
                   std::to_string(c.retry.max_delay_ms) + " is less than cdp.retry.base_delay_ms (" +
                       std::to_string(c.retry.base_delay_ms) + ")");
        }
    }

    // The cdp keys other than the token's and retry; false for an unknown one.
    bool cdp_key(const Field& f, const std::string& name, CdpConfig& c) {
        if (name == "base_url") c.base_url = base_url(f);
        else if (name == "ca_file") c.ca_file = str(f);
        else if (name == "rate_limit_qps") c.rate_limit_qps = number(f, 0.001, 1e9);
        else if (name == "max_in_flight") c.max_in_flight = int32(f, 1, 256);
        else if (name == "page_size") c.page_size = int32(f, 1, 10000);
        else if (name == "timeout_ms") c.timeout_ms = int32(f, 1, 600000);
        else if (name == "customer_id_field") c.customer_id_field = str(f);
        else if (name == "max_groups_per_call") c.max_groups_per_call = int32(f, 0, 10000);
        else if (name == "folder") c.folder = str(f);
        else return false;
        return true;
    }

    // Without its trailing slashes. The URL is not echoed: it could carry user:password@.
    std::string base_url(const Field& f) {
        std::string url = str(f);
        const std::string l = lower(url);
        size_t scheme = l.rfind("https://", 0) == 0 ? 8 : l.rfind("http://", 0) == 0 ? 7 : 0;
        if (scheme == 0) fail(f.line, f.key, "must start with http:// or https://");
        if (url.size() == scheme || url[scheme] == '/') fail(f.line, f.key, "has no host");
        while (url.size() > scheme + 1 && url.back() == '/') url.pop_back();
        return url;
    }

    // token_env, token_file, token_command (one of them at most); false for another key.
    bool token_key(const Field& f, const std::string& name, CdpConfig& c, TokenSources& sources) {
        auto one_source = [&] {
            if (++sources.count > 1)
                fail(f.line, f.key, "only one token source may be set, but " + sources.first + " is set too");
            sources.first = f.key;
        };
        if (name == "token_env") {
            c.token_env = str(f);
            if (c.token_env.empty()) return true;
            one_source();
            // Not echoed: a token pasted here by mistake must not reach a log.
            bool ok = !std::isdigit(static_cast<unsigned char>(c.token_env[0]));
            for (unsigned char ch : c.token_env) ok = ok && (std::isalnum(ch) || ch == '_');
            if (!ok) fail(f.line, f.key, "must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)");
        } else if (name == "token_file") {
            c.token_file = str(f);
            if (!c.token_file.empty()) one_source();
        } else if (name == "token_command") {
            if (f.value.IsNull()) return true;
            c.token_command = token_command(f);
            one_source();
        } else {
            return false;
        }
        return true;
    }

    // The program and its arguments. Arguments are never echoed: they may be sensitive.
    std::vector<std::string> token_command(const Field& f) {
        if (!f.value.IsSequence()) fail(f.line, f.key, "expected a list: the program and its arguments");
        if (f.value.size() == 0) fail(f.line, f.key, "must name at least the program");
        std::vector<std::string> argv;
        for (const auto& arg : f.value) {
            if (!arg.IsScalar()) fail(f.line, f.key, "every element must be a string");
            argv.push_back(arg.Scalar());
        }
        if (argv[0].empty()) fail(f.line, f.key, "the program name is empty");
        return argv;
    }

    void retry(const Field& section, RetryConfig& r, RetryLines& lines) {
        each(section.value, section.key, [&](const Field& f, const std::string& name) {
            if (name == "max_attempts") {
                r.max_attempts = int32(f, 1, 100);
            } else if (name == "base_delay_ms") {
                r.base_delay_ms = int32(f, 1, 600000);
                lines.base_delay = f.line;
            } else if (name == "max_delay_ms") {
                r.max_delay_ms = int32(f, 1);
                lines.max_delay = f.line;
                lines.max_delay_set = true;
            } else {
                return false;
            }
            return true;
        });
    }

    void database(const Field& section, DatabaseConfig& d) {
        dsn_line_ = memberships_line_ = section.key_line;
        each(section.value, section.key, [&](const Field& f, const std::string& name) {
            // SQL and DSN text is never echoed: a DSN may hold a password.
            if (name == "dsn") {
                d.dsn = str(f);
                dsn_line_ = f.line;
            } else if (name == "desired_memberships") {
                d.desired_memberships = str(f);
                memberships_line_ = f.line;
            } else if (name == "desired_groups") {
                d.desired_groups = str(f);
            } else if (name == "change_query") {
                d.change_query = str(f);
            } else if (name == "schema") {
                d.schema = str(f);
                if (!text::is_plain_identifier(d.schema)) fail(f.line, f.key, shown(d.schema) + " is not a plain identifier ([a-z_][a-z0-9_]*, at most 63 characters)");
            } else {
                return false;
            }
            return true;
        });
    }

    void sync(const Field& section, SyncConfig& s) {
        int mode_line = section.key_line, owns_all_line = section.key_line;
        each(section.value, section.key, [&](const Field& f, const std::string& name) {
            if (name == "mode") {
                const std::string& v = scalar(f, "mirror or additive");
                if (v == "mirror") s.mode = SyncMode::mirror;
                else if (v == "additive") s.mode = SyncMode::additive;
                else fail(f.line, f.key, shown(v) + " is not a mode (expected mirror or additive)");
                mode_line = f.line;
            } else if (name == "poll_interval_s") {
                s.poll_interval_s = int32(f, 1, 86400);
            } else if (name == "full_resync_interval_h") {
                s.full_resync_interval_h = number(f, 0, 87600);
            } else if (name == "max_deletes") {
                s.max_deletes = integer(f, 0, std::numeric_limits<int64_t>::max());
            } else if (name == "owns_all_static_groups") {
                s.owns_all_static_groups = boolean(f);
                owns_all_line = f.line;
            } else if (name == "prune_groups") {
                s.prune_groups = boolean(f);
            } else if (name == "drift_check") {
                s.drift_check = boolean(f);
            } else if (name == "permanent_retry_interval_h") {
                s.permanent_retry_interval_h = number(f, 0, 87600);
            } else {
                return false;
            }
            return true;
        });
        // customerUpdateGroups replaces the customer's whole list, so it removes: it cannot
        // honour a mode that promises never to remove.
        if (s.mode == SyncMode::additive && s.owns_all_static_groups)
            report(std::max(mode_line, owns_all_line), section.key + ".owns_all_static_groups",
                 "cannot be true with sync.mode additive (customerUpdateGroups replaces the whole list)");
    }

    void metrics(const Field& section, MetricsConfig& m) {
        each(section.value, section.key, [&](const Field& f, const std::string& name) {
            if (name == "listen") {
                m.listen = str(f);
                if (!m.listen.empty() && !valid_listen(m.listen))
                    fail(f.line, f.key, shown(m.listen) + " is not HOST:PORT (e.g. 127.0.0.1:9464)");
            } else if (name == "textfile") {
                m.textfile = str(f);
            } else {
                return false;
            }
            return true;
        });
    }

    // HOST:PORT or [IPv6]:PORT with a port 1..65535.
    static bool valid_listen(const std::string& v) {
        const auto colon = v.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == v.size()) return false;
        const std::string port = v.substr(colon + 1);
        int p = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        return ec == std::errc() && end == port.data() + port.size() && p >= 1 && p <= 65535;
    }

    void logging(const Field& section, LoggingConfig& l) {
        each(section.value, section.key, [&](const Field& f, const std::string& name) {
            if (name == "file") {
                l.file = str(f);
            } else if (name == "level") {
                const std::string& v = scalar(f, "a level name");
                try {
                    cdpsync::logging::parse_level(v);
                } catch (const std::invalid_argument&) {
                    fail(f.line, f.key, shown(v) + " is not a level (expected trace, debug, info, warn, error, critical or off)");
                }
                l.level = lower(v);
            } else if (name == "format") {
                const std::string& v = scalar(f, "text or json");
                if (v == "text") l.format = LogFormat::text;
                else if (v == "json") l.format = LogFormat::json;
                else fail(f.line, f.key, shown(v) + " is not a format (expected text or json)");
            } else if (name == "max_size_mb") {
                l.max_size_mb = int32(f, 1, 10000);
            } else if (name == "max_files") {
                l.max_files = int32(f, 1, 1000);
            } else {
                return false;
            }
            return true;
        });
    }

    std::string file_;
    std::vector<ConfigProblem> problems_;
    int dsn_line_ = 0;
    int memberships_line_ = 0;
};

Config load_node_text(const std::string& yaml, const std::string& name) {
    YAML::Node root;
    try {
        root = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
        throw ConfigError(name, e.mark.is_null() ? 0 : e.mark.line + 1, "", "YAML syntax error: " + e.msg);
    }
    return Loader(name).load(root);
}

}  // namespace

ConfigError::ConfigError(std::string file, int line, std::string key, const std::string& problem)
    : ConfigError(std::move(file), std::vector<ConfigProblem>{{line, std::move(key), problem}}) {}

ConfigError::ConfigError(std::string file, std::vector<ConfigProblem> problems)
    : std::runtime_error(all_text(file, problems)), file_(std::move(file)), problems_(std::move(problems)) {
    if (problems_.empty()) problems_.push_back({0, "", "invalid configuration"});
}

Config load_string(const std::string& yaml, const std::string& source_name) {
    return load_node_text(yaml, source_name);
}

Config load_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path.string(), 0, "", std::string("cannot read: ") + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw ConfigError(path.string(), 0, "", "cannot read");
    Config cfg = load_node_text(text.str(), path.string());
    cfg.source = path;
    return cfg;
}

std::filesystem::path default_path(const std::string& explicit_path) {
    if (!explicit_path.empty()) return explicit_path;
    const char* env = std::getenv("CDP_SYNC_CONFIG");
    if (env != nullptr && *env != '\0') return env;
    return "/etc/cdp-sync/config.yaml";
}

}  // namespace cdpsync::config
