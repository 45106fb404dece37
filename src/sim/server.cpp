// The simulator's HTTP side: a Beast HTTP/1.1 server (keep-alive, one coroutine per
// connection, optional TLS), the 13 CDP endpoints over State, fault injection, the rate
// limit, statistics and the admin API under /__sim/.
#include "sim/server.hpp"

#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "cdp/models.hpp"

namespace cdpsync::sim {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kAdminPrefix = "/__sim/";
constexpr int64_t kMaxCurrent = 1'000'000'000;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ---------------------------------------------------------------- replies

struct Reply {
    int status = 200;
    std::string body;
    std::string content_type = "application/json;charset=UTF-8";
    std::vector<std::pair<std::string, std::string>> headers;
    FaultKind post_fault = FaultKind::none;  // truncated_body or reset: break the reply
    std::string outcome = "ok";             // for the statistics
};

Reply envelope(int code, const std::string& msg, json data = nullptr) {
    Reply r;
    r.body = dump(json{{"code", code}, {"msg", msg}, {"data", std::move(data)}});
    r.outcome = code == 0 ? "ok" : "code_-1";
    return r;
}
Reply ok(json data = nullptr) { return envelope(0, "success", std::move(data)); }
Reply fail(const std::string& msg) { return envelope(-1, msg); }

// What a Spring Boot service answers on an HTTP-level error.
Reply http_error(int status, const std::string& error, const std::string& path) {
    Reply r;
    r.status = status;
    r.body = dump(json{{"timestamp", std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch()).count()},
                       {"status", status}, {"error", error}, {"path", path}});
    r.outcome = "http_" + std::to_string(status);
    return r;
}

Reply admin_json(json j, int status = 200) {
    Reply r;
    r.status = status;
    r.body = dump(j);
    return r;
}
Reply admin_error(int status, const std::string& msg) {
    return admin_json(json{{"error", msg}}, status);
}

std::string serialize(const Reply& r, bool keep_alive) {
    std::string out;
    out.reserve(r.body.size() + 160);
    out += "HTTP/1.1 ";
    out += std::to_string(r.status);
    out += ' ';
    out += std::string(http::obsolete_reason(static_cast<http::status>(r.status)));
    out += "\r\nServer: cdp-sync-sim\r\nContent-Type: ";
    out += r.content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(r.body.size());
    out += keep_alive ? "\r\nConnection: keep-alive" : "\r\nConnection: close";
    for (const auto& [k, v] : r.headers) {
        out += "\r\n";
        out += k;
        out += ": ";
        out += v;
    }
    out += "\r\n\r\n";
    out += r.body;
    return out;
}

// ---------------------------------------------------------------- parameters

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string url_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

using Params = std::map<std::string, std::string>;

Params parse_query(std::string_view query) {
    Params p;
    while (!query.empty()) {
        auto amp = query.find('&');
        auto part = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (part.empty()) continue;
        auto eq = part.find('=');
        std::string key = url_decode(part.substr(0, eq));
        std::string value = eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1));
        p.emplace(std::move(key), std::move(value));
    }
    return p;
}

std::optional<int64_t> parse_int(std::string_view s) {
    int64_t v = 0;
    if (s.empty()) return std::nullopt;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
    return v;
}

// A parameter error becomes `code: -1` with this msg.
struct BadParam {
    std::string msg;
};
std::string missing(const std::string& name) { return "参数" + name + "不能为空"; }
std::string wrong_type(const std::string& name) { return "参数" + name + "类型错误"; }

std::optional<int64_t> query_long(const Params& p, const std::string& name, bool required) {
    auto it = p.find(name);
    if (it == p.end() || it->second.empty()) {
        if (required) throw BadParam{missing(name)};
        return std::nullopt;
    }
    auto v = parse_int(it->second);
    if (!v) throw BadParam{wrong_type(name)};
    return v;
}

std::optional<int64_t> body_long(const json& body, const std::string& name, bool required) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
        if (required) throw BadParam{missing(name)};
        return std::nullopt;
    }
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_string()) {
        if (auto v = parse_int(it->get_ref<const std::string&>())) return v;
    }
    throw BadParam{wrong_type(name)};
}

std::optional<std::string> body_string(const json& body, const std::string& name, bool required) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
        if (required) throw BadParam{missing(name)};
        return std::nullopt;
    }
    if (!it->is_string()) throw BadParam{wrong_type(name)};
    return it->get<std::string>();
}

std::vector<int64_t> body_long_list(const json& body, const std::string& name) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) throw BadParam{missing(name)};
    if (!it->is_array()) throw BadParam{wrong_type(name)};
    std::vector<int64_t> out;
    out.reserve(it->size());
    for (const auto& v : *it) {
        if (v.is_number_integer()) out.push_back(v.get<int64_t>());
        else if (v.is_string() && parse_int(v.get_ref<const std::string&>()))
            out.push_back(*parse_int(v.get_ref<const std::string&>()));
        else throw BadParam{wrong_type(name)};
    }
    return out;
}

// ---------------------------------------------------------------- endpoints

enum class Ep {
    add_group, delete_group, update_group, simple_query, members_page,
    folder_add, folder_delete, folder_update, folder_tree,
    customer_add_groups, customer_delete_groups, customer_update_groups, groups_by_customer,
};
struct EndpointInfo {
    Ep ep;
    const char* path;  // from cdp::path, with its leading slash
    http::verb method;
    bool write;
};
const EndpointInfo kEndpoints[] = {
    {Ep::add_group, cdp::path::add_group, http::verb::post, true},
    {Ep::delete_group, cdp::path::delete_group, http::verb::get, true},
    {Ep::update_group, cdp::path::update_group, http::verb::post, true},
    {Ep::simple_query, cdp::path::simple_query, http::verb::get, false},
    {Ep::members_page, cdp::path::members_page, http::verb::get, false},
    {Ep::folder_add, cdp::path::folder_add, http::verb::post, true},
    {Ep::folder_delete, cdp::path::folder_delete, http::verb::post, true},
    {Ep::folder_update, cdp::path::folder_update, http::verb::post, true},
    {Ep::folder_tree, cdp::path::folder_tree, http::verb::get, false},
    {Ep::customer_add_groups, cdp::path::customer_add_groups, http::verb::post, true},
    {Ep::customer_delete_groups, cdp::path::customer_delete_groups, http::verb::post, true},
    {Ep::customer_update_groups, cdp::path::customer_update_groups, http::verb::post, true},
    {Ep::groups_by_customer, cdp::path::groups_by_customer, http::verb::get, false},
};

const EndpointInfo* find_endpoint(std::string_view rel_path) {
    for (const auto& e : kEndpoints)
        if (rel_path == e.path) return &e;
    return nullptr;
}

json page_json(int64_t current, int64_t size, int64_t total, json records) {
    return json{{"current", current},
                {"size", size},
                {"total", total},
                {"pages", size > 0 ? (total + size - 1) / size : 0},
                {"records", std::move(records)}};
}

// ---------------------------------------------------------------- statistics

struct Stats {
    std::mutex mutex;
    std::map<std::string, std::map<std::string, int64_t>> by_endpoint;
    int64_t total = 0;
    int64_t rate_limited = 0;
    int64_t sent_429 = 0;
    int64_t write_calls = 0;
    std::deque<Clock::time_point> arrivals;  // every CDP request in the last second
    std::deque<Clock::time_point> accepted;  // those the rate limit let through
    std::deque<Clock::time_point> limited;   // the rate limit's own window
    size_t max_arrivals = 0;
    size_t max_accepted = 0;

    static void slide(std::deque<Clock::time_point>& q, Clock::time_point now) {
        while (!q.empty() && now - q.front() >= std::chrono::seconds(1)) q.pop_front();
    }
    // Records an arrival; false when the rate limit refuses it (counted as such).
    bool admit(Clock::time_point now, double qps, bool fixed_window) {
        std::lock_guard lock(mutex);
        ++total;
        slide(arrivals, now);
        arrivals.push_back(now);
        max_arrivals = std::max(max_arrivals, arrivals.size());
        slide(accepted, now);
        if (qps > 0) {
            // floor(qps) per sliding second; below 1 qps, one per 1/qps seconds.
            const auto window = qps >= 1 ? Clock::duration(std::chrono::seconds(1))
                                         : std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(1.0 / qps));
            const size_t limit = qps >= 1 ? static_cast<size_t>(qps) : 1;
            if (fixed_window) {
                // limit.fixed_window: the window is the clock's current whole window.
                const auto window_start = now - (now.time_since_epoch() % window);
                while (!limited.empty() && limited.front() < window_start) limited.pop_front();
            } else {
                while (!limited.empty() && now - limited.front() >= window) limited.pop_front();
            }
            if (limited.size() >= limit) {
                ++rate_limited;
                ++sent_429;
                return false;
            }
            limited.push_back(now);
        }
        accepted.push_back(now);
        max_accepted = std::max(max_accepted, accepted.size());
        return true;
    }
    void record(const std::string& endpoint, const std::string& outcome, int status, bool write) {
        std::lock_guard lock(mutex);
        auto& m = by_endpoint[endpoint];
        ++m["calls"];
        ++m[outcome];
        if (status == 429 && outcome != "rate_limited") ++sent_429;
        if (write) ++write_calls;
    }
    void reset() {
        std::lock_guard lock(mutex);
        by_endpoint.clear();
        total = rate_limited = sent_429 = write_calls = 0;
        arrivals.clear();
        accepted.clear();
        limited.clear();
        max_arrivals = max_accepted = 0;
    }
    json to_json() {
        std::lock_guard lock(mutex);
        json eps = json::object();
        std::map<std::string, int64_t> outcomes;
        for (const auto& [ep, m] : by_endpoint) {
            eps[ep] = m;
            for (const auto& [k, v] : m)
                if (k != "calls") outcomes[k] += v;
        }
        return json{{"total", total},
                    {"endpoints", std::move(eps)},
                    {"outcomes", outcomes},
                    {"max_requests_per_second", max_accepted},
                    {"max_arrivals_per_second", max_arrivals},
                    {"rate_limited", rate_limited},
                    {"sent_429", sent_429},
                    {"write_calls", write_calls}};
    }
};

}  // namespace

// ---------------------------------------------------------------- the server

struct Server::Impl {
    ServerOptions opts;
    State state;
    Faults faults;
    Stats stats;
    std::shared_ptr<spdlog::logger> log;
    std::atomic<double> qps{0};
    std::atomic<uint16_t> bound_port{0};

    std::unique_ptr<net::io_context> ioc;
    std::unique_ptr<ssl::context> tls;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::vector<std::thread> threads;
    bool started = false;

    mutable std::mutex capture_mutex;
    std::deque<CapturedRequest> captured;

    explicit Impl(ServerOptions o)
        : opts(std::move(o)),
          faults(opts.faults, opts.seed),
          log(opts.logger ? opts.logger : spdlog::default_logger()),
          qps(opts.rate_limit_qps) {
        state.set_quirks(opts.quirks);
    }

    bool tls_enabled() const { return !opts.tls_cert_file.empty() && !opts.tls_key_file.empty(); }

    std::string root_url() const {
        std::string host = opts.address;
        if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
        if (host.find(':') != std::string::npos) host = "[" + host + "]";
        return std::string(tls_enabled() ? "https://" : "http://") + host + ":" +
               std::to_string(bound_port.load());
    }

    // ------------------------------------------------------------ connections

    net::awaitable<void> accept_loop() {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket socket = co_await acceptor->async_accept(
                net::make_strand(*ioc), net::redirect_error(net::use_awaitable, ec));
            if (ec) {
                if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
                log->warn("sim: accept failed: {}", ec.message());
                continue;
            }
            socket.set_option(tcp::no_delay(true), ec);
            auto ex = socket.get_executor();
            if (tls_enabled())
                net::co_spawn(ex, tls_session(std::move(socket)), net::detached);
            else
                net::co_spawn(ex, plain_session(std::move(socket)), net::detached);
        }
    }

    net::awaitable<void> plain_session(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        bool graceful = co_await serve(stream);
        boost::system::error_code ec;
        if (graceful) stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }

    net::awaitable<void> tls_session(tcp::socket socket) {
        beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls);
        boost::system::error_code ec;
        // Handshake, bounded so a silent client cannot hold the connection.
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
        co_await stream.async_handshake(ssl::stream_base::server,
                                        net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
        bool graceful = co_await serve(stream);
        if (!graceful) co_return;
        // Shut TLS down politely; the peer may already be gone.
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
        co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
    }

    // Serves requests until the peer closes, an error, or a fault breaks the connection.
    // Returns true when the connection should be shut down gracefully.
    template <class Stream>
    net::awaitable<bool> serve(Stream& stream) {
        beast::flat_buffer buffer;
        for (;;) {
            boost::system::error_code ec;
            http::request_parser<http::string_body> parser;
            parser.body_limit(1024ull * 1024 * 1024);
            beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(opts.idle_timeout_s));
            co_await http::async_read_header(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return ec == http::error::end_of_stream;
            if (!parser.is_done()) {
                // curl asks before sending a big body (a seed); answer at once instead of
                // letting it wait a second.
                if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
                    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
                    co_await net::async_write(stream, net::buffer(kContinue), net::redirect_error(net::use_awaitable, ec));
                    if (ec) co_return false;
                }
                co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
                if (ec) co_return false;
            }
            http::request<http::string_body> req = parser.release();

            const auto received = Clock::now();
            Reply reply = co_await handle(req);
            if (Clock::now() - received > std::chrono::seconds(1))  // a latency fault ate the deadline
                beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
            const bool keep_alive = req.keep_alive();
            std::string out = serialize(reply, keep_alive);

            // The write shares the read's deadline (one timer per request, not three).
            if (reply.post_fault == FaultKind::reset) {
                // Part of the reply, then an RST (linger 0) instead of a FIN.
                co_await net::async_write(stream, net::buffer(out.data(), out.size() / 2),
                                          net::redirect_error(net::use_awaitable, ec));
                auto& sock = beast::get_lowest_layer(stream).socket();
                sock.set_option(net::socket_base::linger(true, 0), ec);
                sock.close(ec);
                co_return false;
            }
            if (reply.post_fault == FaultKind::truncated_body) {
                // The headers promise the whole body; half of it comes, then the end.
                const size_t cut = out.size() - reply.body.size() + reply.body.size() / 2;
                co_await net::async_write(stream, net::buffer(out.data(), cut),
                                          net::redirect_error(net::use_awaitable, ec));
                auto& sock = beast::get_lowest_layer(stream).socket();
                sock.shutdown(tcp::socket::shutdown_both, ec);
                sock.close(ec);
                co_return false;
            }
            co_await net::async_write(stream, net::buffer(out), net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return false;
            if (!keep_alive) co_return true;
        }
    }

    // ------------------------------------------------------------ dispatch

    net::awaitable<Reply> handle(const http::request<http::string_body>& req) {
        const std::string_view target = req.target();
        const auto qmark = target.find('?');
        const std::string_view path = target.substr(0, qmark);
        const std::string_view query = qmark == std::string_view::npos ? "" : target.substr(qmark + 1);
        if (path.substr(0, std::string_view(kAdminPrefix).size()) == kAdminPrefix) co_return admin(req, path, query);

        capture(req);
        const EndpointInfo* info = endpoint_at(path);
        const std::string name = info ? std::string(info->path + 1) : "unknown";
        if (!stats.admit(Clock::now(), qps.load(), state.quirks().limit.fixed_window)) {
            Reply r = http_error(429, "Too Many Requests", std::string(path));
            r.headers.emplace_back("Retry-After", "1");
            r.outcome = "rate_limited";
            stats.record(name, r.outcome, r.status, false);
            co_return r;
        }
        const FaultDecision fault = info ? faults.decide(name) : FaultDecision{};
        co_await pause(fault.delay);
        Reply reply;
        if (info) reply = co_await answer(req, *info, name, path, query, fault);
        else reply = http_error(404, "Not Found", std::string(path));
        stats.record(name, reply.outcome, reply.status, info && info->write);
        if (log->should_log(spdlog::level::debug))
            log->debug("sim: {} {} -> {} {}", std::string(req.method_string()), std::string(target),
                       reply.status, reply.outcome);
        co_return reply;
    }

    Reply admin(const http::request<http::string_body>& req, std::string_view path, std::string_view query) {
        try {
            return handle_admin(req, path.substr(std::string_view(kAdminPrefix).size()), parse_query(query));
        } catch (const std::exception& e) {
            return admin_error(400, e.what());
        }
    }

    const EndpointInfo* endpoint_at(std::string_view path) const {
        const std::string_view prefix = opts.prefix;
        if (path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix)
            return find_endpoint(path.substr(prefix.size()));
        return nullptr;
    }

    static net::awaitable<void> pause(std::chrono::milliseconds delay) {
        if (delay.count() <= 0) co_return;
        net::steady_timer timer(co_await net::this_coro::executor);
        timer.expires_after(delay);
        boost::system::error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    }

    // A request to a known endpoint: a fault's reply, a refusal, or the endpoint's answer.
    net::awaitable<Reply> answer(const http::request<http::string_body>& req, const EndpointInfo& info,
                                 const std::string& name, std::string_view target_path, std::string_view query,
                                 const FaultDecision& fault) {
        const std::string path(target_path);
        if (auto broken = fault_reply(fault, path)) co_return std::move(*broken);
        if (auto refused = refusal(req, info, path)) co_return std::move(*refused);
        Reply reply = call(info, name, parse_query(query), req.body(), fault);
        co_await answer_create_late(info.ep, reply);
        if (fault.kind == FaultKind::truncated_body || fault.kind == FaultKind::reset) {
            reply.post_fault = fault.kind;
            reply.outcome = std::string("fault_") + to_string(fault.kind);
        }
        co_return reply;
    }

    // The faults that replace the reply (the others break it, or delay it).
    std::optional<Reply> fault_reply(const FaultDecision& fault, const std::string& path) {
        Reply reply;
        switch (fault.kind) {
        case FaultKind::http_5xx: return fault_5xx(fault.http_status, path);
        case FaultKind::burst_429:
            reply = http_error(429, "Too Many Requests", path);
            reply.headers.emplace_back("Retry-After", std::to_string(fault.retry_after_s));
            reply.outcome = "fault_burst_429";
            return reply;
        case FaultKind::transient_code:
            reply = fail(fault.msg);
            reply.outcome = "fault_transient_code";
            return reply;
        case FaultKind::non_json_body:
            reply.content_type = "text/html";
            reply.body = "<html><head><title>Service Unavailable</title></head>"
                         "<body><h1>系统维护中</h1><p>请稍后再试</p></body></html>";
            reply.outcome = "fault_non_json_body";
            return reply;
        default: return std::nullopt;
        }
    }

    // A wrong method, token or content type.
    std::optional<Reply> refusal(const http::request<http::string_body>& req, const EndpointInfo& info,
                                 const std::string& path) {
        if (req.method() != info.method) return http_error(405, "Method Not Allowed", path);
        if (req["token"] != opts.token) {
            Reply reply = opts.auth_failure == AuthFailure::http_401 ? http_error(401, "Unauthorized", path)
                                                                      : fail("token无效或已过期");
            reply.outcome = "auth_refused";
            return reply;
        }
        if (info.method == http::verb::post &&
            req[http::field::content_type].find("application/json") == std::string_view::npos)
            return http_error(415, "Unsupported Media Type", path);
        return std::nullopt;
    }

    // Quirk groups.create_reply_delay_ms: a create is applied, and answered only later.
    net::awaitable<void> answer_create_late(Ep ep, const Reply& reply) {
        if ((ep != Ep::add_group && ep != Ep::folder_add) || reply.outcome != "ok") co_return;
        co_await pause(std::chrono::milliseconds(state.quirks().groups.create_reply_delay_ms));
    }

    Reply fault_5xx(int status, std::string_view path) {
        Reply r;
        if (status == 500) {
            r = http_error(500, "Internal Server Error", std::string(path));
        } else {
            r.status = status;
            r.content_type = "text/html";
            r.body = "<html><head><title>" + std::to_string(status) +
                     "</title></head><body><center><h1>" + std::to_string(status) + " " +
                     std::string(http::obsolete_reason(static_cast<http::status>(status))) +
                     "</h1></center><hr><center>nginx</center></body></html>";
        }
        r.outcome = "fault_http_5xx";
        return r;
    }

    void capture(const http::request<http::string_body>& req) {
        if (opts.request_capture == 0) return;
        CapturedRequest c;
        c.method = std::string(req.method_string());
        c.target = std::string(req.target());
        for (const auto& f : req) c.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        c.body = req.body();
        std::lock_guard lock(capture_mutex);
        captured.push_back(std::move(c));
        while (captured.size() > opts.request_capture) captured.pop_front();
    }

    // ------------------------------------------------------------ the CDP endpoints

    Reply call(const EndpointInfo& info, const std::string& name, const Params& q,
               const std::string& body_text, const FaultDecision& fault) {
        json body;
        if (info.method == http::verb::post) {
            body = json::parse(body_text, nullptr, false);
            if (body.is_discarded() || !body.is_object()) {
                Reply r = fail("请求体格式错误");
                if (info.write) log_write(name, 0, {}, r, fault);
                return r;
            }
        }
        int64_t customer_id = 0;
        std::vector<int64_t> ids;
        Reply r;
        try {
            r = dispatch(info.ep, q, body, customer_id, ids);
        } catch (const BadParam& e) {
            r = fail(e.msg);
        }
        if (info.write) log_write(name, customer_id, std::move(ids), r, fault);
        if (opts.longs_as_strings && r.outcome == "ok") {
            json j = json::parse(r.body);
            if (j["data"].is_number_integer()) j["data"] = std::to_string(j["data"].get<int64_t>());
            else stringify_longs(j["data"]);
            r.body = dump(j);
        }
        return r;
    }

    // The API says a Long may arrive as a string: turn the id-like numbers into strings.
    static void stringify_longs(json& j) {
        static const char* const keys[] = {"id", "groupId", "customerTotal", "total", "current", "size", "pages"};
        if (j.is_array()) {
            for (auto& item : j) stringify_longs(item);
        } else if (j.is_object()) {
            for (auto& [k, v] : j.items()) {
                if (v.is_number_integer() && std::find(std::begin(keys), std::end(keys), k) != std::end(keys))
                    v = std::to_string(v.get<int64_t>());
                else if (v.is_structured())
                    stringify_longs(v);
            }
        }
    }

    void log_write(const std::string& name, int64_t customer_id, std::vector<int64_t> ids,
                   const Reply& r, const FaultDecision& fault) {
        WriteLogEntry e;
        e.endpoint = name;
        e.customer_id = customer_id;
        e.group_ids = std::move(ids);
        e.time = std::chrono::system_clock::now();
        e.code = r.outcome == "ok" ? 0 : -1;
        if (fault.kind == FaultKind::truncated_body || fault.kind == FaultKind::reset) e.fault = to_string(fault.kind);
        e.delay_ms = fault.delay.count();
        if (e.code != 0) {
            json j = json::parse(r.body, nullptr, false);
            if (j.is_object() && j.contains("msg") && j["msg"].is_string()) e.msg = j["msg"];
        }
        state.log_write(std::move(e));
    }

    std::pair<int64_t, int64_t> paging(const Params& q) {
        const int64_t current = *query_long(q, "current", true);
        const int64_t size = *query_long(q, "size", true);
        if (current < 1) throw BadParam{"参数current必须大于0"};
        if (size < 1) throw BadParam{"参数size必须大于0"};
        return {std::min(current, kMaxCurrent), std::min(size, opts.max_page_size)};
    }

    // A simpleQuery record, with the quirks groups.missing_type / groups.unknown_type.
    static json listed_group(const cdp::Group& g, const GroupQuirks& quirks) {
        json j = cdp::to_json(g);
        if (quirks.missing_type.count(g.name)) j.erase("type");
        if (quirks.unknown_type.count(g.name)) j["type"] = 3;
        return j;
    }

    static void require_business_type(const json& body, bool allow_label) {
        auto bt = body_string(body, "businessType", true);
        if (*bt != cdp::kBusinessType && !(allow_label && *bt == "customer_label"))
            throw BadParam{"参数businessType错误"};
    }

    Reply dispatch(Ep ep, const Params& q, const json& body, int64_t& customer_id,
                   std::vector<int64_t>& ids) {
        switch (ep) {
        case Ep::add_group: return add_group(body, ids);
        case Ep::delete_group: return delete_group(q, ids);
        case Ep::update_group: return update_group(body, ids);
        case Ep::simple_query: return simple_query(q);
        case Ep::members_page: return members_page(q);
        case Ep::folder_add: return folder_add(body, ids);
        case Ep::folder_delete: return folder_delete(body, ids);
        case Ep::folder_update: return folder_update(body, ids);
        case Ep::folder_tree: return folder_tree(q);
        case Ep::customer_add_groups:
        case Ep::customer_delete_groups:
        case Ep::customer_update_groups: return customer_groups_write(ep, body, customer_id, ids);
        case Ep::groups_by_customer: return groups_by_customer(q);
        }
        return fail("未知接口");
    }

    static Reply done(const Outcome<None>& o) { return o.ok() ? ok() : fail(o.error); }

    Reply add_group(const json& body, std::vector<int64_t>& ids) {
        auto name = body_string(body, "name", true);
        auto type = body_long(body, "type", true);
        auto description = body_string(body, "description", false);
        auto folder = body_long(body, "groupId", false);
        if (body.contains("tagName") && !body["tagName"].is_null() && !body["tagName"].is_string())
            throw BadParam{wrong_type("tagName")};
        if (body.contains("tagNameList") && !body["tagNameList"].is_null() && !body["tagNameList"].is_array())
            throw BadParam{wrong_type("tagNameList")};
        auto o = state.create_group(*name, description.value_or(""), folder, static_cast<int>(*type));
        if (!o.ok()) return fail(o.error);
        ids.push_back(o.value);
        return ok(o.value);
    }

    Reply delete_group(const Params& q, std::vector<int64_t>& ids) {
        const int64_t id = *query_long(q, "customerGroupId", true);
        ids.push_back(id);
        return done(state.delete_group(id));
    }

    Reply update_group(const json& body, std::vector<int64_t>& ids) {
        const int64_t id = *body_long(body, "customerGroupId", true);
        ids.push_back(id);
        auto type = body_long(body, "type", true);
        auto name = body_string(body, "name", false);
        auto description = body_string(body, "description", false);
        auto folder = body_long(body, "groupId", false);
        return done(state.update_group(id, name, description, folder, static_cast<int>(*type)));
    }

    Reply simple_query(const Params& q) {
        auto [current, size] = paging(q);
        auto folder = query_long(q, "groupId", false);
        std::string key;
        if (auto it = q.find("searchKey"); it != q.end()) key = it->second;
        auto page = state.query_groups(key, folder, current, size);
        if (page.total == 0 && state.quirks().read.null_data) return ok(json(nullptr));
        const GroupQuirks quirks = state.quirks().groups;
        json records = json::array();
        for (const auto& g : page.records)
            if (!key.empty() || !quirks.unlisted.count(g.name)) records.push_back(listed_group(g, quirks));
        return ok(page_json(page.current, page.size, page.total, std::move(records)));
    }

    Reply members_page(const Params& q) {
        const int64_t id = *query_long(q, "customerGroupId", true);
        auto [current, size] = paging(q);
        auto o = state.members_page(id, current, size);
        if (!o.ok()) return fail(o.error);
        // By hand rather than through json: this is the largest hot reply.
        const auto& p = o.value;
        const ReadQuirks read = state.quirks().read;
        if (p.total == 0 && read.null_data) return ok(json(nullptr));
        Reply r;
        r.body.reserve(128 + p.records.size() * 420);
        r.body += "{\"code\":0,\"msg\":\"success\",\"data\":{\"current\":" + std::to_string(p.current) +
                  ",\"size\":" + std::to_string(p.size) + ",\"total\":" + std::to_string(p.total) +
                  ",\"pages\":" + std::to_string((p.total + p.size - 1) / p.size) + ",\"records\":[";
        for (size_t i = 0; i < p.records.size(); ++i) {
            if (i) r.body += ',';
            append_customer_record(r.body, p.records[i], read.customer_id_records);
        }
        r.body += "]}}";
        return r;
    }

    Reply folder_add(const json& body, std::vector<int64_t>& ids) {
        require_business_type(body, false);
        auto name = body_string(body, "name", true);
        auto parent = body_string(body, "parentCode", false);
        auto o = state.create_folder(*name, parent.value_or(""));
        if (!o.ok()) return fail(o.error);
        ids.push_back(o.value);
        return ok(o.value);
    }

    Reply folder_delete(const json& body, std::vector<int64_t>& ids) {
        require_business_type(body, true);
        const int64_t id = *body_long(body, "commonGroupId", true);
        ids.push_back(id);
        return done(state.delete_folder(id));
    }

    Reply folder_update(const json& body, std::vector<int64_t>& ids) {
        require_business_type(body, false);
        const int64_t id = *body_long(body, "commonGroupId", true);
        ids.push_back(id);
        auto name = body_string(body, "name", true);
        return done(state.update_folder(id, *name));
    }

    Reply folder_tree(const Params& q) {
        auto it = q.find("businessType");
        if (it == q.end() || it->second.empty()) throw BadParam{missing("businessType")};
        if (it->second != cdp::kBusinessType) throw BadParam{"参数businessType错误"};
        json data = json::array();
        for (const auto& f : state.folder_tree()) data.push_back(cdp::to_json(f));
        return ok(std::move(data));
    }

    // customerAddGroups, customerDeleteGroups, customerUpdateGroups.
    Reply customer_groups_write(Ep ep, const json& body, int64_t& customer_id, std::vector<int64_t>& ids) {
        customer_id = *body_long(body, "customerId", true);
        ids = body_long_list(body, "customerGroupIdList");
        if (auto outage = state.take_write_outage()) return envelope(outage->code, outage->msg);
        if (ep == Ep::customer_add_groups) return done(state.customer_add_groups(customer_id, ids));
        if (ep == Ep::customer_delete_groups) return done(state.customer_delete_groups(customer_id, ids));
        return done(state.customer_update_groups(customer_id, ids));
    }

    Reply groups_by_customer(const Params& q) {
        const int64_t id = *query_long(q, "customerId", true);
        const int64_t type = *query_long(q, "type", true);
        auto o = state.customer_groups(id, static_cast<int>(type));
        if (!o.ok()) return fail(o.error);
        if (o.value.empty() && state.quirks().read.null_data) return ok(json(nullptr));
        json data = json::array();
        for (const auto& g : o.value) data.push_back(cdp::to_json(g));
        return ok(std::move(data));
    }

    // ------------------------------------------------------------ the admin API

    // One admin request: its query, and its body parsed when a route asks for it.
    struct AdminCall {
        const Params& query;
        const std::string& body_text;
        json body() const {
            json j = json::parse(body_text.empty() ? std::string("{}") : body_text, nullptr, false);
            if (j.is_discarded()) throw std::invalid_argument("the body is not JSON");
            return j;
        }
    };
    using AdminHandler = Reply (Impl::*)(const AdminCall&);
    struct AdminRoute {
        std::string_view route;
        http::verb method;
        AdminHandler handler;
    };

    Reply handle_admin(const http::request<http::string_body>& req, std::string_view route,
                       const Params& q) {
        using http::verb;
        static const AdminRoute routes[] = {
            {"health", verb::get, &Impl::admin_health},
            {"stats", verb::get, &Impl::admin_stats},
            {"stats/reset", verb::post, &Impl::admin_reset_stats},
            {"write-log", verb::get, &Impl::admin_write_log},
            {"write-log", verb::delete_, &Impl::admin_clear_write_log},
            {"state", verb::get, &Impl::admin_state},
            {"reset", verb::post, &Impl::admin_reset},
            {"quirks", verb::get, &Impl::admin_quirks},
            {"quirks", verb::put, &Impl::admin_set_quirks},
            {"faults", verb::get, &Impl::admin_faults},
            {"faults", verb::put, &Impl::admin_set_faults},
            {"faults", verb::delete_, &Impl::admin_clear_faults},
            {"faults/script", verb::post, &Impl::admin_script_faults},
            {"rate-limit", verb::get, &Impl::admin_rate_limit},
            {"rate-limit", verb::put, &Impl::admin_set_rate_limit},
            {"seed", verb::post, &Impl::admin_seed},
            {"requests", verb::get, &Impl::admin_requests},
        };
        const AdminCall call{q, req.body()};
        for (const auto& r : routes)
            if (r.route == route && r.method == req.method()) return (this->*r.handler)(call);
        return admin_error(404, "no admin route " + std::string(http::to_string(req.method())) + " /__sim/" +
                                    std::string(route));
    }

    Reply admin_health(const AdminCall&) { return admin_json({{"ok", true}}); }
    Reply admin_stats(const AdminCall&) { return admin_json(stats.to_json()); }
    Reply admin_reset_stats(const AdminCall&) {
        reset_stats();
        return admin_json({{"ok", true}});
    }

    // ?endpoint= filters by the endpoint's path or its last segment.
    Reply admin_write_log(const AdminCall& call) {
        json entries = json::array();
        auto ep = call.query.find("endpoint");
        for (const auto& e : state.write_log()) {
            if (ep != call.query.end() && e.endpoint != ep->second &&
                e.endpoint.substr(e.endpoint.rfind('/') + 1) != ep->second)
                continue;
            entries.push_back(to_json(e));
        }
        return admin_json(std::move(entries));
    }

    Reply admin_clear_write_log(const AdminCall&) {
        state.clear_write_log();
        return admin_json({{"ok", true}});
    }

    // ?group=ID: that group; else everything (?members=0 leaves the members out).
    Reply admin_state(const AdminCall& call) {
        const Params& q = call.query;
        if (auto g = q.find("group"); g != q.end()) {
            auto id = parse_int(g->second);
            if (!id) return admin_error(400, "group must be an integer");
            json j = state.dump_group(*id);
            if (j.is_null()) return admin_error(404, "no group " + g->second);
            return admin_json(std::move(j));
        }
        auto members = q.find("members");
        return admin_json(state.dump(members == q.end() || members->second != "0"));
    }

    Reply admin_reset(const AdminCall&) {
        state.reset();
        reset_stats();
        std::lock_guard lock(capture_mutex);
        captured.clear();
        return admin_json({{"ok", true}});
    }

    Reply admin_quirks(const AdminCall&) { return admin_json(state.quirks().to_json()); }
    Reply admin_set_quirks(const AdminCall& call) {
        state.set_quirks(Quirks::from_json(call.body(), state.quirks()));
        return admin_json(state.quirks().to_json());
    }

    Reply admin_faults(const AdminCall&) { return admin_json(faults.to_json()); }
    Reply admin_set_faults(const AdminCall& call) {
        faults.configure(FaultConfig::from_json(call.body()));
        return admin_json(faults.to_json());
    }
    Reply admin_clear_faults(const AdminCall&) {
        faults.clear();
        return admin_json(faults.to_json());
    }
    // One scripted fault, or an array of them.
    Reply admin_script_faults(const AdminCall& call) {
        json j = call.body();
        if (j.is_array()) {
            for (const auto& s : j) faults.push_script(scripted_fault_from_json(s));
        } else {
            faults.push_script(scripted_fault_from_json(j));
        }
        return admin_json(faults.to_json());
    }

    Reply admin_rate_limit(const AdminCall&) { return admin_json({{"qps", qps.load()}}); }
    Reply admin_set_rate_limit(const AdminCall& call) {
        json j = call.body();
        if (!j.contains("qps") || !j["qps"].is_number()) return admin_error(400, "qps must be a number");
        qps = j["qps"].get<double>();
        return admin_json({{"qps", qps.load()}});
    }

    Reply admin_seed(const AdminCall& call) { return admin_json(seed(call.body())); }

    Reply admin_requests(const AdminCall&) {
        json out = json::array();
        std::lock_guard lock(capture_mutex);
        for (const auto& c : captured) {
            json h = json::object();
            for (const auto& [k, v] : c.headers) h[k] = v;
            out.push_back(json{{"method", c.method}, {"target", c.target}, {"headers", h}, {"body", c.body}});
        }
        return admin_json(std::move(out));
    }

    void reset_stats() {
        stats.reset();
        state.clear_write_log();
    }

    static int64_t need_long(const json& j, const char* key) {
        auto it = j.find(key);
        if (it == j.end()) throw std::invalid_argument(std::string("seed: missing ") + key);
        if (auto v = cdp::as_long(*it)) return *v;
        throw std::invalid_argument(std::string("seed: ") + key + " must be an integer");
    }

    // POST /__sim/seed: folders, groups, customers, memberships, then generated data, each
    // optional; answers what was made and the totals.
    json seed(const json& j) {
        if (!j.is_object()) throw std::invalid_argument("seed: the body must be an object");
        json out = json::object();
        if (auto it = j.find("folders"); it != j.end()) out["folders"] = seed_folders(*it);
        if (auto it = j.find("groups"); it != j.end()) out["groups"] = seed_groups(*it);
        if (auto it = j.find("customers"); it != j.end()) {
            seed_customers(*it);
            out["customers"] = state.customer_count();
        }
        if (auto it = j.find("memberships"); it != j.end()) out["memberships"] = seed_memberships(*it);
        if (auto it = j.find("generate"); it != j.end()) out["generated"] = seed_generate(*it);
        out["totals"] = json{{"customers", state.customer_count()}, {"groups", state.group_count()},
                             {"memberships", state.membership_count()}};
        return out;
    }

    json seed_folders(const json& folders) {
        json made = json::array();
        for (const auto& f : folders) {
            const std::string parent = f.value("parentCode", std::string());
            int64_t id = state.add_folder(f.at("name").get<std::string>(), parent);
            made.push_back(cdp::to_json(*state.folder(id)));
        }
        return made;
    }

    // A group's folder: by id (folderId) or by name (folder).
    json seed_groups(const json& groups) {
        json made = json::array();
        for (const auto& g : groups) {
            std::optional<int64_t> folder;
            if (g.contains("folderId")) folder = need_long(g, "folderId");
            if (g.contains("folder")) {
                auto f = state.find_folder_by_name(g.at("folder").get<std::string>());
                if (!f) throw std::invalid_argument("seed: no folder named " + g.at("folder").get<std::string>());
                folder = f->id;
            }
            int64_t id = state.add_group(g.at("name").get<std::string>(), g.value("description", std::string()),
                                         folder, g.value("type", cdp::kStaticGroup));
            made.push_back(cdp::to_json(*state.group(id)));
        }
        return made;
    }

    // A list of ids, or {first, count}.
    void seed_customers(const json& customers) {
        if (!customers.is_array()) {
            state.add_customers(need_long(customers, "first"), need_long(customers, "count"));
            return;
        }
        for (const auto& c : customers) {
            auto id = cdp::as_long(c);
            if (!id) throw std::invalid_argument("seed: customers holds a non-integer");
            state.ensure_customer(*id);
        }
    }

    json seed_memberships(const json& memberships) {
        std::vector<std::pair<int64_t, int64_t>> pairs;
        pairs.reserve(memberships.size());
        std::map<std::string, int64_t> by_name;
        for (const auto& m : memberships) pairs.push_back(membership_pair(m, by_name));
        return state.add_memberships(pairs);
    }

    // [customerId, groupId], or {customerId, groupId | group: name}; `by_name` caches the
    // names looked up.
    std::pair<int64_t, int64_t> membership_pair(const json& m, std::map<std::string, int64_t>& by_name) {
        if (m.is_array() && m.size() == 2) {
            auto c = cdp::as_long(m[0]);
            auto g = cdp::as_long(m[1]);
            if (!c || !g) throw std::invalid_argument("seed: a membership pair holds a non-integer");
            return {*c, *g};
        }
        if (!m.is_object()) throw std::invalid_argument("seed: a membership is [customerId, groupId] or an object");
        const int64_t c = need_long(m, "customerId");
        if (m.contains("groupId")) return {c, need_long(m, "groupId")};
        const std::string name = m.at("group").get<std::string>();
        auto found = by_name.find(name);
        if (found == by_name.end()) {
            auto groups = state.find_groups_by_name(name);
            if (groups.size() != 1) throw std::invalid_argument("seed: no single group named " + name);
            found = by_name.emplace(name, groups.front().id).first;
        }
        return {c, found->second};
    }

    json seed_generate(const json& g) {
        GenerateSpec spec;
        if (g.contains("first_customer_id")) spec.first_customer_id = need_long(g, "first_customer_id");
        if (g.contains("customers")) spec.customers = need_long(g, "customers");
        if (g.contains("groups")) spec.groups = need_long(g, "groups");
        if (g.contains("smart_groups")) spec.smart_groups = need_long(g, "smart_groups");
        if (g.contains("memberships")) spec.memberships = need_long(g, "memberships");
        if (g.contains("seed")) spec.seed = static_cast<uint64_t>(need_long(g, "seed"));
        if (g.contains("group_name_prefix")) spec.group_name_prefix = g.at("group_name_prefix").get<std::string>();
        if (g.contains("folderId")) spec.folder_id = need_long(g, "folderId");
        const auto t0 = Clock::now();
        auto r = state.generate(spec);
        return json{{"group_ids", r.group_ids}, {"customers", r.customers}, {"memberships", r.memberships},
                    {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()}};
    }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() { stop(); }

void Server::start() {
    Impl& s = *impl_;
    if (s.started) return;
    s.ioc = std::make_unique<net::io_context>(std::max(1, s.opts.threads));
    if (s.tls_enabled()) {
        s.tls = std::make_unique<ssl::context>(ssl::context::tls_server);
        s.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        s.tls->use_certificate_chain_file(s.opts.tls_cert_file);
        s.tls->use_private_key_file(s.opts.tls_key_file, ssl::context::pem);
    }
    // Bind, then listen; a busy port throws here, in the caller's thread.
    tcp::endpoint ep(net::ip::make_address(s.opts.address), s.opts.port);
    s.acceptor = std::make_unique<tcp::acceptor>(net::make_strand(*s.ioc));
    s.acceptor->open(ep.protocol());
    s.acceptor->set_option(net::socket_base::reuse_address(true));
    s.acceptor->bind(ep);
    s.acceptor->listen(net::socket_base::max_listen_connections);
    s.bound_port = s.acceptor->local_endpoint().port();
    net::co_spawn(s.acceptor->get_executor(), s.accept_loop(), net::detached);
    s.started = true;
    for (int i = 0; i < std::max(1, s.opts.threads); ++i)
        s.threads.emplace_back([&s] {
            for (;;) {
                try {
                    s.ioc->run();
                    return;
                } catch (const std::exception& e) {
                    s.log->error("sim: handler threw: {}", e.what());
                }
            }
        });
    s.log->debug("sim: listening on {}", s.root_url());
}

void Server::stop() {
    Impl& s = *impl_;
    if (!s.started) return;
    s.started = false;
    s.ioc->stop();
    for (auto& t : s.threads) t.join();
    s.threads.clear();
    // Destroying the io_context destroys the suspended sessions and closes their sockets.
    s.acceptor.reset();
    s.ioc.reset();
}

uint16_t Server::port() const { return impl_->bound_port.load(); }
std::string Server::root_url() const { return impl_->root_url(); }
std::string Server::base_url() const { return impl_->root_url() + impl_->opts.prefix; }
State& Server::state() { return impl_->state; }
Faults& Server::faults() { return impl_->faults; }
nlohmann::json Server::stats() const { return impl_->stats.to_json(); }
void Server::reset_stats() { impl_->reset_stats(); }
void Server::set_rate_limit(double qps) { impl_->qps = qps; }
double Server::rate_limit() const { return impl_->qps.load(); }

std::vector<CapturedRequest> Server::captured_requests() const {
    std::lock_guard lock(impl_->capture_mutex);
    return {impl_->captured.begin(), impl_->captured.end()};
}

}  // namespace cdpsync::sim
