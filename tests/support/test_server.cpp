#include "support/test_server.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <list>
#include <mutex>
#include <thread>

#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace cdpsync::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;

std::optional<std::string> TestRequest::header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
        if (n.size() == name.size() &&
            std::equal(n.begin(), n.end(), name.begin(), [](unsigned char a, unsigned char b) {
                return std::tolower(a) == std::tolower(b);
            }))
            return v;
    }
    return std::nullopt;
}

struct TestServer::Impl {
    explicit Impl(TestServerOptions opts, Handler h) : options(std::move(opts)), handler(std::move(h)) {
        if (!options.cert_file.empty() && !options.key_file.empty()) {
            ssl_ctx.emplace(ssl::context::tls_server);
            ssl_ctx->use_certificate_chain_file(options.cert_file);
            ssl_ctx->use_private_key_file(options.key_file, ssl::context::pem);
        }
        tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
        acceptor.open(endpoint.protocol());
        acceptor.set_option(net::socket_base::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen();
        port = acceptor.local_endpoint().port();
        net::co_spawn(ioc, listen(), net::detached);
        thread = std::thread([this] { ioc.run(); });
    }

    net::awaitable<void> listen() {
        for (;;) {
            error_code ec;
            tcp::socket socket = co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return;
            const uint64_t id = ++connections;
            net::co_spawn(ioc, session(std::move(socket), id), net::detached);
        }
    }

    net::awaitable<void> session(tcp::socket socket, uint64_t id) {
        if (stopping) co_return;
        error_code ec;
        socket.set_option(tcp::no_delay(true), ec);
        if (ssl_ctx) {
            beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *ssl_ctx);
            auto& lowest = beast::get_lowest_layer(stream);
            lowest.expires_after(std::chrono::seconds(10));
            auto closer = closers.insert(closers.end(), [&lowest] { lowest.close(); });
            co_await stream.async_handshake(ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
            if (!ec && !stopping) {
                const char* name = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
                std::string sni = name ? name : "";
                co_await serve(stream, lowest, id, sni);
            }
            closers.erase(closer);
        } else {
            beast::tcp_stream stream(std::move(socket));
            auto closer = closers.insert(closers.end(), [&stream] { stream.close(); });
            std::string no_sni;
            co_await serve(stream, stream, id, no_sni);
            closers.erase(closer);
            stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        }
    }

    struct InProgress {
        Impl& impl;
        explicit InProgress(Impl& i) : impl(i) {
            const int now = ++impl.in_progress;
            int seen = impl.max_in_progress.load();
            while (now > seen && !impl.max_in_progress.compare_exchange_weak(seen, now)) {
            }
        }
        ~InProgress() { --impl.in_progress; }
    };

    template <class Stream>
    net::awaitable<void> serve(Stream& stream, beast::tcp_stream& lowest, uint64_t id, const std::string& sni) {
        beast::flat_buffer buffer;
        net::steady_timer delay_timer(ioc);
        auto cancel_delay = closers.insert(closers.end(), [&delay_timer] { delay_timer.cancel(); });
        error_code ec;
        for (int index = 0; !stopping; ++index) {
            // Read a request; an idle keep-alive connection is closed after close_idle_after.
            if (index > 0 && options.close_idle_after.count() > 0)
                lowest.expires_after(options.close_idle_after);
            else
                lowest.expires_never();
            http::request<http::string_body> req;
            co_await http::async_read(stream, buffer, req, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            lowest.expires_never();

            TestRequest seen;
            seen.arrival = std::chrono::steady_clock::now();
            seen.method = std::string(req.method_string());
            seen.target = std::string(req.target());
            for (const auto& field : req) seen.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
            seen.body = req.body();
            seen.connection_id = id;
            seen.index_on_connection = index;
            seen.tls_server_name = sni;
            Handler h;
            {
                std::lock_guard lock(mutex);
                recorded.push_back(seen);
                h = handler;
            }
            InProgress counting(*this);
            TestResponse reply = h ? h(seen) : TestResponse{};
            if (reply.delay.count() > 0) {
                delay_timer.expires_after(reply.delay);
                co_await delay_timer.async_wait(net::redirect_error(net::use_awaitable, ec));
                if (stopping) break;
            }

            if (reply.action == Action::never_respond) {
                // Wait for the client to give up (or the server to stop).
                char sink[512];
                for (;;) {
                    co_await stream.async_read_some(net::buffer(sink), net::redirect_error(net::use_awaitable, ec));
                    if (ec) break;
                }
                break;
            }
            if (reply.action == Action::close_before_response) break;
            if (reply.action == Action::raw) {
                co_await net::async_write(stream, net::buffer(reply.body), net::redirect_error(net::use_awaitable, ec));
                break;
            }
            if (reply.action == Action::reset_mid_response) {
                static const std::string partial =
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"partial\":";
                co_await net::async_write(stream, net::buffer(partial), net::redirect_error(net::use_awaitable, ec));
                // SO_LINGER with zero timeout makes close() send RST instead of FIN.
                lowest.socket().set_option(net::socket_base::linger(true, 0), ec);
                lowest.socket().close(ec);
                break;
            }

            http::response<http::string_body> res{static_cast<http::status>(reply.status), req.version()};
            res.set(http::field::content_type, "application/json");
            for (const auto& [name, value] : reply.headers) res.set(name, value);
            res.keep_alive(req.keep_alive() && reply.keep_alive);
            res.body() = reply.body;
            res.prepare_payload();
            lowest.expires_after(std::chrono::seconds(10));
            co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
            if (ec || !res.keep_alive()) break;
        }
        closers.erase(cancel_delay);
    }

    void stop() {
        if (!thread.joinable()) return;
        net::post(ioc, [this] {
            stopping = true;
            error_code ec;
            acceptor.close(ec);
            for (auto& close : closers) close();
        });
        thread.join();
    }

    TestServerOptions options;
    std::optional<ssl::context> ssl_ctx;  // outlives the sessions' streams
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    std::thread thread;
    uint16_t port = 0;

    mutable std::mutex mutex;  // guards handler and recorded
    Handler handler;
    std::vector<TestRequest> recorded;
    std::atomic<uint64_t> connections{0};
    std::atomic<int> in_progress{0};
    std::atomic<int> max_in_progress{0};

    // Server thread only.
    bool stopping = false;
    std::list<std::function<void()>> closers;
};

TestServer::TestServer(TestServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

TestServer::~TestServer() { stop(); }

void TestServer::set_handler(Handler handler) {
    std::lock_guard lock(impl_->mutex);
    impl_->handler = std::move(handler);
}

void TestServer::stop() { impl_->stop(); }

uint16_t TestServer::port() const { return impl_->port; }

std::string TestServer::base_url(const std::string& prefix, const std::string& host) const {
    return std::string(impl_->ssl_ctx ? "https://" : "http://") + host + ":" + std::to_string(impl_->port) + prefix;
}

std::vector<TestRequest> TestServer::requests() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->recorded;
}

uint64_t TestServer::connections_accepted() const { return impl_->connections.load(); }

int TestServer::max_concurrent_requests() const { return impl_->max_in_progress.load(); }

}  // namespace cdpsync::testing
