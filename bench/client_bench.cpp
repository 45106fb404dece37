// http::Client throughput and latency on loopback: rate limit off, max_in_flight 8 and 32,
// against a minimal keep-alive Beast server on its own thread. Prints a markdown table.
//
//   client_bench [requests per row, default 20000]
#include <utility>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "http/client.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// The server: answers every request with a small JSON body, keeping connections open.
class Server {
public:
    Server() : acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
        net::co_spawn(ioc_, accept(), net::detached);
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~Server() {
        net::post(ioc_, [this] { ioc_.stop(); });
        thread_.join();
    }
    unsigned short port() const { return acceptor_.local_endpoint().port(); }

private:
    net::awaitable<void> accept() {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket socket = co_await acceptor_.async_accept(net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return;
            net::co_spawn(ioc_, session(std::move(socket)), net::detached);
        }
    }

    static net::awaitable<void> session(tcp::socket socket) {
        socket.set_option(tcp::no_delay(true));
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        boost::system::error_code ec;
        for (;;) {
            bhttp::request<bhttp::string_body> req;
            co_await bhttp::async_read(stream, buffer, req, net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return;
            bhttp::response<bhttp::string_body> res{bhttp::status::ok, req.version()};
            res.set(bhttp::field::content_type, "application/json");
            res.keep_alive(req.keep_alive());
            res.body() = R"({"code":0,"msg":"success","data":{"total":0,"records":[]}})";
            res.prepare_payload();
            co_await bhttp::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return;
        }
    }

    net::io_context ioc_;
    tcp::acceptor acceptor_;
    std::thread thread_;
};

struct Row {
    int max_in_flight;
    int requests;
    int failures = 0;
    double seconds = 0;
    double p50_ms = 0, p99_ms = 0;
    uint64_t connections = 0;
};

cdpsync::http::Request make_request() {
    cdpsync::http::Request r;
    r.method = cdpsync::http::Method::post;
    r.path = "/customer-group-ref/customerAddGroups";
    r.body = R"({"customerId":123456789,"customerGroupIds":[1,2,3]})";
    r.headers.push_back({"token", "bench-token"});
    return r;
}

Row run(unsigned short port, int max_in_flight, int requests) {
    net::io_context ioc;
    cdpsync::http::ClientOptions options;
    options.base_url = "http://127.0.0.1:" + std::to_string(port) + "/openapi";
    options.max_in_flight = max_in_flight;
    options.rate_limit_qps = 0;
    auto quiet = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
    cdpsync::http::Client client(ioc.get_executor(), options, quiet);

    Row row{max_in_flight, requests};
    std::vector<double> latencies;
    latencies.reserve(requests);
    int next = 0;
    // One worker per slot, each sending back to back: the client is never idle.
    auto worker = [&]() -> net::awaitable<void> {
        while (next < requests) {
            ++next;
            auto request = make_request();
            const auto start = Clock::now();
            auto result = co_await client.send(request);
            latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
            if (!result.has_value() || result.value().status != 200) ++row.failures;
        }
    };
    const auto start = Clock::now();
    for (int i = 0; i < max_in_flight; ++i) net::co_spawn(ioc, worker(), net::detached);
    ioc.run();
    row.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::sort(latencies.begin(), latencies.end());
    row.p50_ms = latencies[latencies.size() / 2];
    row.p99_ms = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
    row.connections = client.stats().connections_opened;
    return row;
}

}  // namespace

int main(int argc, char** argv) {
    const int requests = argc > 1 ? std::atoi(argv[1]) : 20000;
    Server server;
    run(server.port(), 8, 500);  // warm-up
    std::vector<Row> rows;
    for (int in_flight : {8, 32}) rows.push_back(run(server.port(), in_flight, requests));

    std::printf("| max_in_flight | requests | failures | seconds | requests/s | p50 ms | p99 ms | connections |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& r : rows)
        std::printf("| %d | %d | %d | %.2f | %.0f | %.3f | %.3f | %llu |\n", r.max_in_flight, r.requests, r.failures,
                    r.seconds, r.requests / r.seconds, r.p50_ms, r.p99_ms,
                    static_cast<unsigned long long>(r.connections));
    bool ok = true;
    for (const auto& r : rows) ok = ok && r.failures == 0;
    return ok ? 0 : 1;
}
