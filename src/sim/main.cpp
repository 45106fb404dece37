// cdp-sync-sim: runs the CDP simulator until SIGINT or SIGTERM. See docs/simulator.md.
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "sim/server.hpp"

namespace {

using cdpsync::sim::AuthFailure;
using cdpsync::sim::FaultConfig;
using cdpsync::sim::Server;
using cdpsync::sim::ServerOptions;

const char* const kUsage = R"(usage: cdp-sync-sim [options]

A stand-in for the CDP open API (in memory), with fault injection and an admin API
under /__sim/. Prints "listening on URL" once bound; stops on SIGINT/SIGTERM.

  --address ADDR          bind address (default 127.0.0.1)
  --port N                port (default 0: any free port)
  --prefix PATH           CDP path prefix (default /openapi)
  --token-file FILE       the token CDP calls must carry (else $CDP_SIM_TOKEN, else "sim-token")
  --auth-failure MODE     http401 (default) or code: how a bad token is refused
  --rate-limit-qps N      requests per second before 429 (default 0: no limit)
  --max-page-size N       largest page returned (default 1000)
  --tls-cert FILE         serve HTTPS with this certificate chain (PEM) ...
  --tls-key FILE          ... and this private key (PEM)
  --faults FILE           fault rules (YAML, see docs/simulator.md)
  --fault KEY=VALUE       one global rule key, e.g. error_5xx_probability=0.05 (repeatable);
                          ENDPOINT.KEY=VALUE for one endpoint, e.g. customerAddGroups.reset_probability=0.1
  --quirk SECTION.KEY=VALUE  a CDP behaviour the API document allows, off by default
                          (repeatable; docs/simulator.md, "Quirks")
  --seed N                fault RNG seed (default 1)
  --threads N             server threads (default 1)
  --capture N             keep the last N requests for GET /__sim/requests (default 0)
  --longs-as-strings      reply ids, totals and paging numbers as JSON strings
  --seed-demo             start with a few demo folders, groups and customers
  --log-level LEVEL       trace, debug, info (default), warn, error
  --help                  this text
)";

[[noreturn]] void usage_error(const std::string& msg) {
    std::cerr << "cdp-sync-sim: " << msg << "\n(see --help)\n";
    std::exit(2);
}

long long to_number(const std::string& flag, const std::string& value) {
    try {
        size_t used = 0;
        long long v = std::stoll(value, &used);
        if (used != value.size()) throw std::invalid_argument(value);
        return v;
    } catch (const std::exception&) {
        usage_error(flag + " needs an integer, got '" + value + "'");
    }
}

std::string read_token_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) usage_error("cannot read token file " + path);
    std::ostringstream text;
    text << in.rdbuf();
    std::string t = text.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
    if (t.empty()) usage_error("token file " + path + " is empty");
    return t;
}

// "key=value" sets a global rule key, "endpoint.key=value" an endpoint's (over the global).
void apply_fault_flag(FaultConfig& cfg, const std::string& flag) {
    const auto eq = flag.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("--fault needs KEY=VALUE, got " + flag);
    std::string key = flag.substr(0, eq);
    const std::string text = flag.substr(eq + 1);
    nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded() || value.is_object()) value = text;  // a bare word is a string
    cdpsync::sim::FaultRule* base = &cfg.global;
    if (const auto dot = key.rfind('.'); dot != std::string::npos) {
        const std::string endpoint = key.substr(0, dot);
        key = key.substr(dot + 1);
        if (!cfg.endpoints.count(endpoint)) cfg.endpoints[endpoint] = cfg.global;
        base = &cfg.endpoints[endpoint];
    }
    *base = cdpsync::sim::rule_from_json(nlohmann::json{{key, value}}, *base);
}

void seed_demo(cdpsync::sim::State& state) {
    const int64_t root = state.add_folder("演示分组");
    const std::string root_code = state.folder(root)->code;
    const int64_t members = state.add_folder("会员", root_code);
    const int64_t vip = state.add_group("VIP客户", "消费满一万元", members);
    const int64_t fresh = state.add_group("新客", "近30天注册", root);
    const int64_t smart = state.add_group("高价值(智能)", "规则计算", root, cdpsync::cdp::kSmartGroup);
    state.add_customers(1, 1000);
    std::vector<std::pair<int64_t, int64_t>> pairs;
    for (int64_t c = 1; c <= 1000; ++c) {
        if (c % 10 == 0) pairs.emplace_back(c, vip);
        if (c > 900) pairs.emplace_back(c, fresh);
        if (c % 7 == 0) pairs.emplace_back(c, smart);
    }
    state.add_memberships(pairs);
}

}  // namespace

int main(int argc, char** argv) {
    ServerOptions opts;
    opts.port = 0;
    if (const char* t = std::getenv("CDP_SIM_TOKEN"); t && *t) opts.token = t;
    std::string faults_file;
    std::vector<std::string> fault_flags;
    std::vector<std::string> quirk_flags;
    std::string log_level = "info";
    bool demo = false;

    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(flag + " needs a value");
            return argv[++i];
        };
        if (flag == "--help" || flag == "-h") {
            std::cout << kUsage;
            return 0;
        } else if (flag == "--address") opts.address = value();
        else if (flag == "--port") {
            auto p = to_number(flag, value());
            if (p < 0 || p > 65535) usage_error("--port out of range");
            opts.port = static_cast<uint16_t>(p);
        } else if (flag == "--prefix") {
            opts.prefix = value();
            if (opts.prefix.empty() || opts.prefix.front() != '/') opts.prefix.insert(0, "/");
            while (opts.prefix.size() > 1 && opts.prefix.back() == '/') opts.prefix.pop_back();
            if (opts.prefix.rfind("/__sim", 0) == 0) usage_error("--prefix must not be under /__sim");
        } else if (flag == "--token-file") opts.token = read_token_file(value());
        else if (flag == "--auth-failure") {
            const std::string v = value();
            if (v == "http401" || v == "401") opts.auth_failure = AuthFailure::http_401;
            else if (v == "code") opts.auth_failure = AuthFailure::code_minus_1;
            else usage_error("--auth-failure is http401 or code");
        } else if (flag == "--rate-limit-qps") {
            try {
                opts.rate_limit_qps = std::stod(value());
            } catch (const std::exception&) {
                usage_error("--rate-limit-qps needs a number");
            }
        } else if (flag == "--max-page-size") {
            opts.max_page_size = to_number(flag, value());
            if (opts.max_page_size < 1) usage_error("--max-page-size must be at least 1");
        } else if (flag == "--tls-cert") opts.tls_cert_file = value();
        else if (flag == "--tls-key") opts.tls_key_file = value();
        else if (flag == "--faults") faults_file = value();
        else if (flag == "--fault") fault_flags.push_back(value());
        else if (flag == "--quirk") quirk_flags.push_back(value());
        else if (flag == "--seed") opts.seed = static_cast<uint64_t>(to_number(flag, value()));
        else if (flag == "--threads") {
            opts.threads = static_cast<int>(to_number(flag, value()));
            if (opts.threads < 1 || opts.threads > 64) usage_error("--threads must be 1..64");
        } else if (flag == "--capture") opts.request_capture = static_cast<size_t>(to_number(flag, value()));
        else if (flag == "--seed-demo") demo = true;
        else if (flag == "--longs-as-strings") opts.longs_as_strings = true;
        else if (flag == "--log-level") log_level = value();
        else usage_error("unknown option " + flag);
    }
    if (opts.tls_cert_file.empty() != opts.tls_key_file.empty())
        usage_error("--tls-cert and --tls-key go together");

    auto log = spdlog::stderr_color_mt("sim");
    log->set_level(spdlog::level::from_str(log_level));
    opts.logger = log;

    try {
        if (!faults_file.empty()) opts.faults = FaultConfig::from_yaml_file(faults_file);
        for (const auto& f : fault_flags) apply_fault_flag(opts.faults, f);
        for (const auto& q : quirk_flags) opts.quirks.set_flag(q);
    } catch (const std::exception& e) {
        usage_error(e.what());
    }

    // Block the stop signals before any thread starts, then wait for them here.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    try {
        Server server(opts);
        if (demo) seed_demo(server.state());
        server.start();
        std::cout << "admin API at " << server.root_url() << "/__sim/\n"
                  << "listening on " << server.base_url() << std::endl;
        int sig = 0;
        sigwait(&stop_signals, &sig);
        log->info("sim: signal {}, stopping", sig);
        server.stop();
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync-sim: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
