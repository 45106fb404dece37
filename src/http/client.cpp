#include "http/client.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <deque>
#include <list>
#include <stdexcept>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <spdlog/spdlog.h>

#include "config/logging.hpp"
#include "http/rate_limiter.hpp"
#include "http/wakeup.hpp"

namespace cdpsync::http {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

const char* to_string(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::resolve: return "resolve";
    case ErrorKind::connect: return "connect";
    case ErrorKind::tls_handshake: return "tls_handshake";
    case ErrorKind::tls_verify: return "tls_verify";
    case ErrorKind::timeout: return "timeout";
    case ErrorKind::connection_reset: return "connection_reset";
    case ErrorKind::protocol: return "protocol";
    case ErrorKind::cancelled: return "cancelled";
    }
    return "unknown";
}

Url parse_url(const std::string& url) {
    auto fail = [&](const std::string& why) {
        return std::invalid_argument("invalid base URL '" + url + "': " + why);
    };
    Url out;
    std::string rest;
    auto lower = url;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower.rfind("https://", 0) == 0) {
        out.tls = true;
        rest = url.substr(8);
    } else if (lower.rfind("http://", 0) == 0) {
        rest = url.substr(7);
    } else {
        throw fail("expected http:// or https://");
    }
    if (rest.find_first_of("?#") != std::string::npos) throw fail("query and fragment are not allowed");
    const auto slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    out.prefix = slash == std::string::npos ? "" : rest.substr(slash);
    while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
    if (authority.find('@') != std::string::npos) throw fail("user information is not allowed");
    std::string port;
    if (!authority.empty() && authority.front() == '[') {  // IPv6 literal
        const auto close = authority.find(']');
        if (close == std::string::npos) throw fail("unterminated IPv6 literal");
        out.host = authority.substr(1, close - 1);
        const std::string after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw fail("garbage after IPv6 literal");
            port = after.substr(1);
        }
    } else {
        const auto colon = authority.find(':');
        out.host = authority.substr(0, colon);
        if (colon != std::string::npos) port = authority.substr(colon + 1);
    }
    if (out.host.empty()) throw fail("missing host");
    if (port.empty()) {
        if (authority.find(':') != std::string::npos && authority.front() != '[') throw fail("empty port");
        port = out.tls ? "443" : "80";
    }
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }) ||
        std::stoi(port) < 1 || std::stoi(port) > 65535)
        throw fail("bad port '" + port + "'");
    out.port = port;
    return out;
}

namespace {

constexpr std::uint64_t body_limit = 64ull * 1024 * 1024;
constexpr std::uint32_t header_limit = 64 * 1024;

bool is_ip_literal(const std::string& host) {
    error_code ec;
    net::ip::make_address(host, ec);
    return !ec;
}

std::string percent_encode(const std::string& s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// Converts to a failed Result, or to any other result over TransportError.
outcome::failure_type<TransportError> failure(ErrorKind kind, std::string message) {
    return outcome::failure(TransportError{kind, std::move(message)});
}

// The peer went away: the socket-level ways a connection ends under our feet.
bool is_disconnect(const error_code& ec) {
    return ec == net::error::eof || ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == net::error::connection_aborted || ec == net::error::not_connected ||
           ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
           ec == ssl::error::stream_truncated;
}

struct Connection {
    Connection(const net::any_io_executor& ex, ssl::context* ctx, std::uint64_t id) : id(id) {
        if (ctx)
            tls.emplace(ex, *ctx);
        else
            plain.emplace(ex);
    }
    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
    void close() {
        error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
        lowest().close();
    }
    // An idle keep-alive connection the server has closed shows as readable: a non-blocking
    // peek tells without consuming anything. Over TLS, pending bytes may be a harmless
    // session ticket, so only end-of-stream counts there (a close_notify that slips through
    // is caught by the resend-once path).
    bool stale() {
        if (buffer.size() != 0 || !lowest().socket().is_open()) return true;
        char byte;
        const auto n = ::recv(lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0) return !(errno == EAGAIN || errno == EWOULDBLOCK);
        return n == 0 || !tls;
    }

    std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
    std::optional<beast::tcp_stream> plain;
    beast::flat_buffer buffer;
    std::uint64_t id;
};

// The outcome of one write + read on a connection.
struct Exchange {
    Result result = failure(ErrorKind::protocol, "no exchange");  // until exchange() sets it
    bool keep_alive = false;
    bool closed_before_response = false;  // nothing came back: safe to resend on a new connection
};

}  // namespace

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
    struct SlotWaiter {
        explicit SlotWaiter(const net::any_io_executor& ex) : wake(ex) {}
        Wakeup wake;
        bool granted = false;
    };

    Impl(net::any_io_executor ex, ClientOptions opts, std::shared_ptr<spdlog::logger> logger)
        : executor(std::move(ex)),
          options(std::move(opts)),
          url(parse_url(options.base_url)),
          log(logger ? std::move(logger) : logging::logger("http")),
          limiter(executor, options.rate_limit_qps, options.rate_limit_margin) {
        // A process that ran just before this client (the previous `run --once`, this
        // daemon before a restart) may have sent up to now: the first send keeps one spacing.
        limiter.assume_sent(RateLimiter::Clock::now());
        if (options.max_in_flight < 1) options.max_in_flight = 1;
        const bool default_port = url.port == (url.tls ? "443" : "80");
        host_header = (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host) +
                      (default_port ? "" : ":" + url.port);
        if (url.tls) {
            ssl_ctx.emplace(ssl::context::tls_client);
            ssl_ctx->set_default_verify_paths();
            if (!options.ca_file.empty()) {
                error_code ec;
                ssl_ctx->load_verify_file(options.ca_file, ec);
                if (ec)
                    throw std::runtime_error("cannot load CA file '" + options.ca_file + "': " + ec.message());
            }
            ssl_ctx->set_verify_mode(ssl::verify_peer);
        } else {
            log->warn("base URL {} is plain http: requests, including the token, travel unencrypted",
                      options.base_url);
        }
    }

    // --- in-flight slots -------------------------------------------------------------

    net::awaitable<bool> acquire_slot() {
        if (stopped) co_return false;
        if (in_use < options.max_in_flight) {
            ++in_use;
            co_return true;
        }
        auto waiter = std::make_shared<SlotWaiter>(executor);
        slot_waiters.push_back(waiter);
        co_await waiter->wake.wait();
        // Woken either by release_slot (granted: the slot was handed over) or by stop().
        if (waiter->granted && stopped) {
            release_slot();
            co_return false;
        }
        co_return waiter->granted;
    }

    void release_slot() {
        if (!slot_waiters.empty()) {
            auto next = slot_waiters.front();
            slot_waiters.pop_front();
            next->granted = true;
            next->wake.notify_all();
        } else {
            --in_use;
        }
    }

    struct SlotGuard {
        Impl& impl;
        ~SlotGuard() { impl.release_slot(); }
    };

    // --- connections -----------------------------------------------------------------

    std::shared_ptr<Connection> take_idle() {
        while (!idle.empty()) {
            auto conn = std::move(idle.back());
            idle.pop_back();
            if (!conn->stale()) return conn;
            log->debug("dropping idle connection #{} closed by the server", conn->id);
            conn->close();
        }
        return nullptr;
    }

    void track(const std::shared_ptr<Connection>& conn) {
        std::erase_if(open, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
        open.push_back(conn);
    }

    std::string endpoint() const { return url.host + ":" + url.port; }

    outcome::failure_type<TransportError> cancelled() const { return failure(ErrorKind::cancelled, "client stopped"); }

    // A connection ready for a request, or why there is none.
    using Connected = outcome::result<std::shared_ptr<Connection>, TransportError, outcome::policy::terminate>;

    // Resolve, connect and (for https) handshake, all within `deadline`.
    net::awaitable<Connected> connect(Clock::time_point deadline) {
        // Resolve: the resolver has no deadline of its own, so a timer cancels it.
        auto resolver = std::make_shared<tcp::resolver>(executor);
        auto timed_out = std::make_shared<bool>(false);
        net::steady_timer timer(executor, deadline);
        timer.async_wait([resolver, timed_out](error_code ec) {
            if (!ec) {
                *timed_out = true;
                resolver->cancel();
            }
        });
        auto hook = cancel_hooks.insert(cancel_hooks.end(), [resolver] { resolver->cancel(); });
        error_code ec;
        auto endpoints = co_await resolver->async_resolve(url.host, url.port, net::redirect_error(net::use_awaitable, ec));
        cancel_hooks.erase(hook);
        timer.cancel();
        if (stopped) co_return cancelled();
        if (*timed_out) co_return failure(ErrorKind::timeout, "resolving " + url.host + " timed out");
        if (ec) co_return failure(ErrorKind::resolve, "cannot resolve " + url.host + ": " + ec.message());

        // Connect to the first address that answers.
        auto conn = std::make_shared<Connection>(executor, ssl_ctx ? &*ssl_ctx : nullptr, ++last_connection_id);
        track(conn);
        conn->lowest().expires_at(deadline);
        co_await conn->lowest().async_connect(endpoints, net::redirect_error(net::use_awaitable, ec));
        if (stopped) co_return cancelled();
        if (ec == beast::error::timeout)
            co_return failure(ErrorKind::timeout, "connecting to " + endpoint() + " timed out");
        if (ec) co_return failure(ErrorKind::connect, "cannot connect to " + endpoint() + ": " + ec.message());
        ++stats.connections_opened;
        // Headers and body may leave in separate segments: without NODELAY each small
        // exchange would wait ~40 ms for the peer's delayed ACK.
        conn->lowest().socket().set_option(tcp::no_delay(true), ec);
        if (!conn->tls) co_return outcome::success(conn);
        Connected secured = co_await handshake(std::move(conn), deadline);
        co_return secured;
    }

    // The TLS handshake on a connected socket, within `deadline`.
    net::awaitable<Connected> handshake(std::shared_ptr<Connection> conn, Clock::time_point deadline) {
        // SNI for names (never for IP literals), and the name or IP checked by OpenSSL
        // itself, so a mismatch fails the handshake with a precise verify result.
        SSL* ssl_handle = conn->tls->native_handle();
        if (is_ip_literal(url.host)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), url.host.c_str());
        } else {
            SSL_set_tlsext_host_name(ssl_handle, url.host.c_str());
            SSL_set_hostflags(ssl_handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            SSL_set1_host(ssl_handle, url.host.c_str());
        }
        conn->tls->set_verify_mode(ssl::verify_peer);
        conn->lowest().expires_at(deadline);
        error_code ec;
        co_await conn->tls->async_handshake(ssl::stream_base::client, net::redirect_error(net::use_awaitable, ec));
        if (stopped) co_return cancelled();
        if (ec == beast::error::timeout)
            co_return failure(ErrorKind::timeout, "TLS handshake with " + endpoint() + " timed out");
        if (ec) {
            const long verify = SSL_get_verify_result(ssl_handle);
            if (verify != X509_V_OK) {
                std::string why = X509_verify_cert_error_string(verify);
                if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
                    why += ": the certificate is not valid for " + url.host;
                co_return failure(ErrorKind::tls_verify, "TLS certificate of " + endpoint() + " rejected: " + why);
            }
            if (is_disconnect(ec))
                co_return failure(ErrorKind::connection_reset,
                                  "connection closed during TLS handshake with " + endpoint());
            co_return failure(ErrorKind::tls_handshake, "TLS handshake with " + endpoint() + " failed: " + ec.message());
        }
        co_return outcome::success(conn);
    }

    // Write the request, read the response, within `deadline`.
    template <class Stream>
    net::awaitable<Exchange> exchange(Stream& stream, Connection& conn, bhttp::request<bhttp::string_body>& req,
                                      Clock::time_point deadline, RateLimiter::Permit& permit) {
        std::optional<Exchange> not_sent = co_await write_request(stream, conn, req, deadline);
        // The limiter spaces the next send from when this one left (or failed to).
        const auto sent_at = Clock::now();
        permit.departed(sent_at);
        if (not_sent) co_return std::move(*not_sent);
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(body_limit);
        parser.header_limit(header_limit);
        const error_code ec = co_await read_response(stream, conn, parser, deadline);
        if (std::optional<Exchange> failed = read_failure(ec, conn, parser)) co_return std::move(*failed);
        co_return received(parser.get(), sent_at);
    }

    // The request written; otherwise the exchange's failure.
    template <class Stream>
    net::awaitable<std::optional<Exchange>> write_request(Stream& stream, Connection& conn,
                                                          bhttp::request<bhttp::string_body>& req,
                                                          Clock::time_point deadline) {
        Exchange out;
        error_code ec;
        conn.lowest().expires_at(deadline);
        co_await bhttp::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
        ++stats.requests_sent;
        if (stopped) {
            out.result = cancelled();
            co_return out;
        }
        if (ec == beast::error::timeout) {
            out.result = failure(ErrorKind::timeout, "writing the request to " + endpoint() + " timed out");
            co_return out;
        }
        if (ec) {
            out.closed_before_response = true;
            out.result = failure(ErrorKind::connection_reset, "writing the request to " + endpoint() + " failed: " + ec.message());
            co_return out;
        }
        co_return std::nullopt;
    }

    // The response's header and body into `parser`; the read's error.
    template <class Stream>
    net::awaitable<error_code> read_response(Stream& stream, Connection& conn,
                                             bhttp::response_parser<bhttp::string_body>& parser,
                                             Clock::time_point deadline) {
        error_code ec;
        conn.lowest().expires_at(deadline);
        co_await bhttp::async_read_header(stream, conn.buffer, parser, net::redirect_error(net::use_awaitable, ec));
        // Beast 1.74 does not hold a Content-Length against body_limit: check it here.
        if (!ec && parser.content_length() && *parser.content_length() > body_limit) ec = bhttp::error::body_limit;
        if (!ec && !parser.is_done())
            co_await bhttp::async_read(stream, conn.buffer, parser, net::redirect_error(net::use_awaitable, ec));
        co_return ec;
    }

    // What a failed (or stopped) read means; nullopt when the response is complete.
    std::optional<Exchange> read_failure(const error_code& ec, Connection& conn,
                                         const bhttp::response_parser<bhttp::string_body>& parser) {
        Exchange out;
        if (stopped) {
            out.result = cancelled();
            return out;
        }
        if (!ec) return std::nullopt;
        if (ec == beast::error::timeout) {
            out.result = failure(ErrorKind::timeout, "no response from " + endpoint() + " within " +
                                                         std::to_string(options.timeout.count()) + " ms");
            return out;
        }
        if (ec == bhttp::error::body_limit) {
            out.result = failure(ErrorKind::protocol, "response body exceeds " + std::to_string(body_limit >> 20) + " MiB");
            return out;
        }
        if (is_disconnect(ec)) {
            out.closed_before_response = !parser.got_some() && conn.buffer.size() == 0;
            out.result = failure(ErrorKind::connection_reset,
                                 (out.closed_before_response ? "connection closed by " + endpoint() + " before any response"
                                                             : "connection to " + endpoint() + " lost mid-response") +
                                     std::string(": ") + ec.message());
            return out;
        }
        if (ec.category() == bhttp::make_error_code(bhttp::error::need_more).category()) {  // a parse error
            out.result = failure(ErrorKind::protocol, "malformed HTTP response from " + endpoint() + ": " + ec.message());
            return out;
        }
        out.result = failure(ErrorKind::connection_reset, "reading the response from " + endpoint() + " failed: " + ec.message());
        return out;
    }

    static Exchange received(bhttp::response<bhttp::string_body>& res, Clock::time_point sent_at) {
        Exchange out;
        Response response;
        response.status = res.result_int();
        response.sent_at = sent_at;
        if (auto it = res.find(bhttp::field::retry_after); it != res.end()) response.retry_after = std::string(it->value());
        out.keep_alive = res.keep_alive();
        response.body = std::move(res.body());
        out.result = std::move(response);
        return out;
    }

    bhttp::request<bhttp::string_body> build(const Request& request) const {
        std::string target = url.prefix + request.path;
        if (target.empty()) target = "/";
        for (size_t i = 0; i < request.query.size(); ++i) {
            target += i == 0 ? '?' : '&';
            target += percent_encode(request.query[i].first);
            target += '=';
            target += percent_encode(request.query[i].second);
        }
        bhttp::request<bhttp::string_body> req{request.method == Method::post ? bhttp::verb::post : bhttp::verb::get,
                                               target, 11};
        req.set(bhttp::field::host, host_header);
        req.set(bhttp::field::user_agent, options.user_agent);
        // The API wants it on every call, GET included.
        req.set(bhttp::field::content_type, "application/json");
        req.set(bhttp::field::accept, "application/json");
        for (const auto& h : request.headers) req.set(h.name, h.value);
        req.keep_alive(true);
        req.body() = request.body;
        req.prepare_payload();
        return req;
    }

    net::awaitable<Result> attempt(const Request& request) {
        auto req = build(request);
        auto deadline = Clock::now() + options.timeout;
        // A reused connection that the server closed while idle fails before any response
        // byte; the request then goes once more on a fresh connection.
        for (int round = 0;; ++round) {
            std::shared_ptr<Connection> conn = round == 0 ? take_idle() : nullptr;
            const bool reused = conn != nullptr;
            if (!conn) {
                Connected connected = co_await connect(deadline);
                if (!connected) co_return outcome::failure(std::move(connected.error()));
                conn = std::move(connected.value());
            }
            // The token is taken with the connection ready, so the server sees the send
            // right after it was counted: connect and handshake times cannot bunch sends.
            const auto before = Clock::now();
            RateLimiter::Permit permit;
            try {
                RateLimiter::Permit granted = co_await limiter.acquire();
                permit = std::move(granted);
            } catch (const boost::system::system_error&) {
                co_return cancelled();
            }
            deadline += Clock::now() - before;  // waiting for the limiter is not the server's time
            if (stopped) co_return cancelled();

            Exchange ex;
            if (conn->tls)
                ex = co_await exchange(*conn->tls, *conn, req, deadline, permit);
            else
                ex = co_await exchange(*conn->plain, *conn, req, deadline, permit);
            if (ex.result.has_value()) {
                if (ex.keep_alive && !stopped) {
                    conn->lowest().expires_never();
                    idle.push_back(std::move(conn));
                } else {
                    conn->close();
                }
                co_return std::move(ex.result);
            }
            conn->close();
            if (reused && round == 0 && ex.closed_before_response && !stopped) {
                log->debug("reused connection #{} was closed by the server; resending on a new connection", conn->id);
                continue;
            }
            co_return std::move(ex.result);
        }
    }

    net::awaitable<Result> send(Request request) {
        auto self = shared_from_this();  // outlives the Client if it is destroyed meanwhile
        const auto start = Clock::now();
        if (!co_await acquire_slot()) co_return cancelled();
        std::optional<Result> attempted;
        {
            SlotGuard guard{*this};
            Result r = co_await attempt(request);
            attempted.emplace(std::move(r));
        }
        Result& result = *attempted;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        const char* method = request.method == Method::post ? "POST" : "GET";
        if (result.has_value()) {
            log->debug("{} {} -> {} in {} ms", method, request.path, result.value().status, ms);
        } else {
            ++stats.transport_errors;
            log->debug("{} {} -> {} ({}) after {} ms", method, request.path, to_string(result.error().kind),
                       result.error().message, ms);
        }
        co_return std::move(result);
    }

    void stop() {
        if (stopped) return;
        stopped = true;
        limiter.cancel();
        for (auto& waiter : slot_waiters) waiter->wake.notify_all();
        slot_waiters.clear();
        for (auto& hook : cancel_hooks) hook();
        for (auto& weak : open)
            if (auto conn = weak.lock()) conn->close();
        open.clear();
        idle.clear();
    }

    net::any_io_executor executor;
    ClientOptions options;
    Url url;
    std::shared_ptr<spdlog::logger> log;
    std::optional<ssl::context> ssl_ctx;
    RateLimiter limiter;
    std::string host_header;
    bool stopped = false;
    int in_use = 0;
    std::deque<std::shared_ptr<SlotWaiter>> slot_waiters;
    std::vector<std::shared_ptr<Connection>> idle;
    std::vector<std::weak_ptr<Connection>> open;
    std::list<std::function<void()>> cancel_hooks;
    std::uint64_t last_connection_id = 0;
    ClientStats stats;
};

Client::Client(net::any_io_executor executor, ClientOptions options, std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options), std::move(log))) {}

Client::~Client() { impl_->stop(); }

net::awaitable<Result> Client::send(Request request) {
    auto impl = impl_;
    co_return co_await impl->send(std::move(request));
}

void Client::stop() { impl_->stop(); }

void Client::set_rate_limit(double qps) { impl_->limiter.set_qps(qps); }

const ClientOptions& Client::options() const { return impl_->options; }

ClientStats Client::stats() const { return impl_->stats; }

}  // namespace cdpsync::http
