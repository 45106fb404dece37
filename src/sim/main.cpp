// cdp-sync-sim: runs the CDP simulator until SIGINT or SIGTERM. See docs/simulator.md.
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "sim/server.hpp"

namespace {

using cdpsync::sim::AuthFailure;
using cdpsync::sim::FaultConfig;
using cdpsync::sim::Server;
using cdpsync::sim::ServerOptions;

[[noreturn]] void usage_error(const std::string& msg) {
    std::cerr << "cdp-sync-sim: " << msg << " (see --help)\n";
    std::exit(2);
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

// "/cdp/" -> "/cdp"; "cdp" -> "/cdp".
std::string normal_prefix(std::string prefix) {
    if (prefix.empty() || prefix.front() != '/') prefix.insert(0, "/");
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    if (prefix.rfind("/__sim", 0) == 0) usage_error("--prefix must not be under /__sim");
    return prefix;
}

// Everything the command line sets; what needs more than a parse is finished in main.
struct SimArgs {
    ServerOptions server;
    std::string token_file;
    std::string faults_file;
    std::vector<std::string> fault_flags;
    std::vector<std::string> quirk_flags;
    std::string log_level = "info";
    bool demo = false;
};

// Every flag of cdp-sync-sim, one line each (docs/simulator.md lists them).
void add_flags(CLI::App& app, SimArgs& a) {
    auto& s = a.server;
    app.add_option("--address", s.address, "bind address (default 127.0.0.1)")->type_name("ADDR");
    app.add_option("--port", s.port, "port (default 0: any free port)")->type_name("N");
    app.add_option("--prefix", s.prefix, "CDP path prefix (default /openapi)")->type_name("PATH");
    app.add_option("--token-file", a.token_file,
                   "the token CDP calls must carry (else $CDP_SIM_TOKEN, else \"sim-token\")")->type_name("FILE");
    app.add_option_function<std::string>(
           "--auth-failure",
           [&s](const std::string& v) { s.auth_failure = v == "code" ? AuthFailure::code_minus_1 : AuthFailure::http_401; },
           "http401 (default) or code: how a bad token is refused")
        ->type_name("MODE")->check(CLI::IsMember({"http401", "401", "code"}).description(""));
    app.add_option("--rate-limit-qps", s.rate_limit_qps, "requests per second before 429 (default 0: no limit)")
        ->type_name("N");
    app.add_option("--max-page-size", s.max_page_size, "largest page returned (default 1000)")
        ->type_name("N")->check(CLI::Range(int64_t{1}, INT64_MAX).description(""));
    auto* cert = app.add_option("--tls-cert", s.tls_cert_file, "serve HTTPS with this certificate chain (PEM) ...")
        ->type_name("FILE");
    auto* key = app.add_option("--tls-key", s.tls_key_file, "... and this private key (PEM)")->type_name("FILE");
    cert->needs(key);
    key->needs(cert);
    app.add_option("--faults", a.faults_file, "fault rules (YAML, see docs/simulator.md)")->type_name("FILE");
    app.add_option("--fault", a.fault_flags,
                   "one global rule key, e.g. error_5xx_probability=0.05 (repeatable); ENDPOINT.KEY=VALUE for one "
                   "endpoint, e.g. customerAddGroups.reset_probability=0.1")
        ->type_name("KEY=VALUE");
    app.add_option("--quirk", a.quirk_flags,
                   "a CDP behaviour the API document allows, off by default (repeatable; docs/simulator.md, Quirks)")
        ->type_name("SECTION.KEY=VALUE");
    app.add_option("--seed", s.seed, "fault RNG seed (default 1)")->type_name("N");
    app.add_option("--threads", s.threads, "server threads (default 1)")->type_name("N")->check(CLI::Range(1, 64).description(""));
    app.add_option("--capture", s.request_capture, "keep the last N requests for GET /__sim/requests (default 0)")
        ->type_name("N");
    app.add_flag("--longs-as-strings", s.longs_as_strings, "reply ids, totals and paging numbers as JSON strings");
    app.add_flag("--seed-demo", a.demo, "start with a few demo folders, groups and customers");
    app.add_option("--log-level", a.log_level, "trace, debug, info (default), warn, error")
        ->type_name("LEVEL")->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}).description(""));
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
    SimArgs args;
    if (const char* t = std::getenv("CDP_SIM_TOKEN"); t && *t) args.server.token = t;
    CLI::App app(
        "A stand-in for the CDP open API (in memory), with fault injection and an admin API\n"
        "under /__sim/. Prints \"listening on URL\" once bound; stops on SIGINT/SIGTERM.",
        "cdp-sync-sim");
    add_flags(app, args);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        return 0;
    } catch (const CLI::ParseError& e) {
        usage_error(e.what());
    }
    ServerOptions& opts = args.server;
    opts.prefix = normal_prefix(opts.prefix);
    if (!args.token_file.empty()) opts.token = read_token_file(args.token_file);

    auto log = spdlog::stderr_color_mt("sim");
    log->set_level(spdlog::level::from_str(args.log_level));
    opts.logger = log;

    try {
        if (!args.faults_file.empty()) opts.faults = FaultConfig::from_yaml_file(args.faults_file);
        for (const auto& f : args.fault_flags) apply_fault_flag(opts.faults, f);
        for (const auto& q : args.quirk_flags) opts.quirks.set_flag(q);
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
        if (args.demo) seed_demo(server.state());
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
