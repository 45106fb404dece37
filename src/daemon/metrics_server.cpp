#include "daemon/metrics_server.hpp"

#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace cdpsync::daemon {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

constexpr auto kConnectionTimeout = 10s;

tcp::endpoint parse_listen(const std::string& listen) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon + 1 == listen.size())
        throw std::runtime_error("metrics.listen '" + listen + "' is not HOST:PORT");
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    unsigned long port = 0;
    try {
        port = std::stoul(listen.substr(colon + 1));
    } catch (const std::exception&) {
        port = 65536;
    }
    if (port > 65535) throw std::runtime_error("metrics.listen '" + listen + "': bad port");
    boost::system::error_code ec;
    const auto address = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
    if (!ec) return {address, static_cast<unsigned short>(port)};
    // A host name: resolved once, at start.
    net::io_context io;
    tcp::resolver resolver(io);
    const auto found = resolver.resolve(host, std::to_string(port), ec);
    if (ec || found.empty()) throw std::runtime_error("metrics.listen '" + listen + "': cannot resolve '" + host + "'");
    return found.begin()->endpoint();
}

}  // namespace

struct MetricsServer::Impl : std::enable_shared_from_this<Impl> {
    Impl(net::any_io_executor ex, Render r, std::shared_ptr<spdlog::logger> l)
        : acceptor(ex), render(std::move(r)), log(std::move(l)) {}

    tcp::acceptor acceptor;
    Render render;
    std::shared_ptr<spdlog::logger> log;

    net::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        while (acceptor.is_open()) {
            boost::system::error_code ec;
            tcp::socket socket = co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
            if (ec == net::error::operation_aborted || !acceptor.is_open()) break;
            if (ec) {
                log->debug("metrics: accept: {}", ec.message());
                continue;
            }
            net::co_spawn(acceptor.get_executor(), answer(beast::tcp_stream(std::move(socket))), net::detached);
        }
    }

    // One connection: requests answered until the client closes or a timeout.
    net::awaitable<void> answer(beast::tcp_stream stream) {
        auto self = shared_from_this();
        beast::flat_buffer buffer;
        for (;;) {
            // Read a request.
            http::request<http::string_body> request;
            stream.expires_after(kConnectionTimeout);
            boost::system::error_code ec;
            co_await http::async_read(stream, buffer, request, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            // Answer it.
            http::response<http::string_body> response = respond(request);
            const bool keep_alive = response.keep_alive();
            stream.expires_after(kConnectionTimeout);
            co_await http::async_write(stream, response, net::redirect_error(net::use_awaitable, ec));
            if (ec || !keep_alive) break;
        }
        // Close the sending side.
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    http::response<http::string_body> respond(const http::request<http::string_body>& request) {
        const auto target = request.target();
        const bool metrics = target == "/metrics" || target.starts_with("/metrics?");
        http::response<http::string_body> response;
        response.version(request.version());
        response.keep_alive(request.keep_alive());
        if (!metrics) {
            response.result(http::status::not_found);
            response.set(http::field::content_type, "text/plain; charset=utf-8");
            response.body() = "not found: the metrics are on /metrics\n";
        } else if (request.method() != http::verb::get) {
            response.result(http::status::method_not_allowed);
            response.set(http::field::allow, "GET");
        } else {
            response.result(http::status::ok);
            response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            response.body() = render();
        }
        response.prepare_payload();
        return response;
    }
};

MetricsServer::MetricsServer(net::any_io_executor executor, const std::string& listen, Render render,
                             std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_shared<Impl>(executor, std::move(render), std::move(log))) {
    const auto endpoint = parse_listen(listen);
    auto& a = impl_->acceptor;
    boost::system::error_code ec;
    a.open(endpoint.protocol(), ec);
    if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) a.bind(endpoint, ec);
    if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("metrics.listen " + listen + ": " + ec.message());
    net::co_spawn(executor, impl_->accept_loop(), net::detached);
}

MetricsServer::~MetricsServer() { stop(); }

uint16_t MetricsServer::port() const {
    boost::system::error_code ec;
    return impl_->acceptor.local_endpoint(ec).port();
}

void MetricsServer::stop() {
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
}

}  // namespace cdpsync::daemon
