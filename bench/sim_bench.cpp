// Simulator benchmark: cheap-call throughput over loopback keep-alive connections, the
// memory of 10 million memberships, and the time to seed 1 million. Prints a markdown table.
//
//   sim_bench [--connections N] [--seconds S] [--server-threads N] [--memberships N] [--port N]
//   (--port: load an external cdp-sync-sim instead of an in-process one)
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <pthread.h>
#include <sys/resource.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "sim/server.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using cdpsync::sim::GenerateSpec;
using cdpsync::sim::Server;
using cdpsync::sim::ServerOptions;
using cdpsync::sim::State;

namespace {

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Resident memory of this process, in MiB (VmRSS from /proc/self/status).
double rss_mib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    return 0;
}

struct Load {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> ok{0};
    std::atomic<int64_t> errors{0};
};

// One keep-alive connection sending the same cheap call back to back.
net::awaitable<void> client(tcp::endpoint ep, std::string target, Load& load) {
    beast::tcp_stream stream(co_await net::this_coro::executor);
    // Connect, with TCP_NODELAY as a real client would.
    co_await stream.async_connect(ep, net::use_awaitable);
    stream.socket().set_option(tcp::no_delay(true));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.set("token", "sim-token");
    beast::flat_buffer buffer;
    while (!load.stop.load(std::memory_order_relaxed)) {
        // Write the request, read the reply.
        co_await http::async_write(stream, req, net::use_awaitable);
        http::response<http::string_body> res;
        co_await http::async_read(stream, buffer, res, net::use_awaitable);
        if (res.result_int() == 200 && res.body().rfind("{\"code\":0", 0) == 0) ++load.ok;
        else ++load.errors;
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

struct Throughput {
    double rps = 0;
    int64_t errors = 0;
    double cpu_us_per_request = 0;  // client and server together, this process
    double server_us_per_request = 0;  // the server's part
};

double thread_cpu_seconds(std::thread& t) {
    clockid_t id;
    timespec ts{};
    if (pthread_getcpuclockid(t.native_handle(), &id) != 0 || clock_gettime(id, &ts) != 0) return 0;
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// external_port: load a cdp-sync-sim started elsewhere (token sim-token) instead of an
// in-process one, e.g. to profile the server alone.
Throughput throughput(int connections, double seconds, int server_threads, uint16_t external_port) {
    ServerOptions o;
    o.threads = server_threads;
    Server server(o);
    server.state().add_group("bench-group");
    if (!external_port) server.start();
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), external_port ? external_port : server.port());
    const std::string target = "/openapi/customer-group/simpleQuery?current=1&size=10";

    Load load;
    net::io_context ioc;
    for (int i = 0; i < connections; ++i)
        net::co_spawn(ioc, client(ep, target, load), [&](std::exception_ptr e) {
            if (e) ++load.errors;
        });
    std::thread runner([&] { ioc.run(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // warm up
    const int64_t start_ok = load.ok.load();
    const auto t0 = Clock::now();
    const double cpu0 = cpu_seconds();
    const double client0 = thread_cpu_seconds(runner);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const int64_t done = load.ok.load() - start_ok;
    const double elapsed = seconds_since(t0);
    const double cpu = cpu_seconds() - cpu0;
    const double client_cpu = thread_cpu_seconds(runner) - client0;
    load.stop = true;
    runner.join();
    server.stop();
    const double n = static_cast<double>(std::max<int64_t>(done, 1));
    return {static_cast<double>(done) / elapsed, load.errors.load(), cpu * 1e6 / n, (cpu - client_cpu) * 1e6 / n};
}

}  // namespace

int main(int argc, char** argv) {
    int connections = 8;
    double seconds = 3;
    int server_threads = 1;
    int64_t big = 10'000'000;
    uint16_t external_port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--connections") connections = std::stoi(value);
        else if (flag == "--seconds") seconds = std::stod(value);
        else if (flag == "--server-threads") server_threads = std::stoi(value);
        else if (flag == "--memberships") big = std::stoll(value);
        else if (flag == "--port") external_port = static_cast<uint16_t>(std::stoi(value));
        else {
            std::cerr << "usage: sim_bench [--connections N] [--seconds S] [--server-threads N] [--memberships N] [--port N]\n";
            return 2;
        }
    }

    // (c) Seeding 1 million memberships: the generator and an explicit list.
    double gen_s = 0, list_s = 0;
    {
        State s;
        GenerateSpec spec;
        spec.customers = 100'000;
        spec.groups = 50;
        spec.memberships = 1'000'000;
        auto t0 = Clock::now();
        s.generate(spec);
        gen_s = seconds_since(t0);

        State t;
        std::vector<int64_t> groups;
        for (int i = 0; i < 50; ++i) groups.push_back(t.add_group("g" + std::to_string(i)));
        std::vector<std::pair<int64_t, int64_t>> pairs;
        pairs.reserve(1'000'000);
        for (int64_t k = 0; k < 1'000'000; ++k) pairs.emplace_back(1 + k / 10, groups[(k * 7) % 50]);
        t0 = Clock::now();
        t.add_memberships(pairs);
        list_s = seconds_since(t0);
    }

    // (a) Requests per second for a cheap call.
    const Throughput tp = throughput(connections, seconds, server_threads, external_port);

    // (b) Memory held by 10 million memberships (1 million customers x 10 groups each).
    const double rss_before = rss_mib();
    State s;
    GenerateSpec spec;
    spec.customers = big / 10;
    spec.groups = 200;
    spec.memberships = big;
    const auto t0 = Clock::now();
    s.generate(spec);
    const double big_s = seconds_since(t0);
    const double rss_after = rss_mib();
    // Touch it through the paging path so the lazy structures are in their read shape.
    auto page = s.members_page(10001, 1, 1000);

    std::printf("## cdp-sync-sim benchmark\n\n");
    std::printf("%d keep-alive connections from one client thread, %d server thread(s), %.0f s; "
                "machine: %u hardware threads.\n\n", connections, server_threads, seconds,
                std::thread::hardware_concurrency());
    std::printf("| measure | target | measured | verdict |\n|---|---|---|---|\n");
    std::printf("| cheap call (simpleQuery, 1 group) over loopback | >= 20000 req/s | %.0f req/s (%lld errors) | %s |\n",
                tp.rps, static_cast<long long>(tp.errors), tp.rps >= 20000 && tp.errors == 0 ? "ok" : "MISSED");
    std::printf("| CPU per cheap call: client + server (server alone) | (info) | %.1f us (%.1f us): "
                "one free core serves %.0f req/s | |\n",
                tp.cpu_us_per_request, tp.server_us_per_request,
                tp.server_us_per_request > 0 ? 1e6 / tp.server_us_per_request : 0.0);
    std::printf("| RSS for %lld memberships (%lld customers, 200 groups) | < 2048 MiB | %.0f MiB total RSS (+%.0f MiB while seeding, in %.2f s) | %s |\n",
                static_cast<long long>(big), static_cast<long long>(big / 10), rss_after,
                rss_after - rss_before, big_s, rss_after < 2048 ? "ok" : "MISSED");
    std::printf("| seed 1M memberships (generate) | < 5 s | %.2f s | %s |\n", gen_s, gen_s < 5 ? "ok" : "MISSED");
    std::printf("| seed 1M memberships (explicit pair list) | < 5 s | %.2f s | %s |\n", list_s,
                list_s < 5 ? "ok" : "MISSED");
    std::printf("\n(first page of a group after seeding: %zu records, total %lld)\n",
                page.value.records.size(), static_cast<long long>(page.value.total));
    return 0;
}
