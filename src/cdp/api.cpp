#include "cdp/api.hpp"

#include <algorithm>
#include <cctype>
#include <exception>
#include <limits>
#include <map>
#include <set>
#include <unordered_set>
#include <variant>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/logging.hpp"
#include "http/wakeup.hpp"

namespace cdpsync::cdp {

namespace {

std::string lower_ascii(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool contains_any(const std::string& haystack, std::initializer_list<const char*> needles) {
    for (const char* n : needles)
        if (haystack.find(n) != std::string::npos) return true;
    return false;
}

bool is_5xx_429_408(unsigned status) {
    return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

// A body `code` that is an HTTP status the transport would retry (429, 5xx, 408).
bool is_http_status_code(int code) { return code > 0 && is_5xx_429_408(static_cast<unsigned>(code)); }

// One call's progress through its attempts.
struct CallState {
    std::string endpoint;
    int attempt = 0;  // attempts sent
    int transient_failures = 0;
    bool reread_used = false;
    uint64_t generation = 0;  // the token generation the last attempt was sent with
};

// What the call does after an attempt that did not succeed.
enum class Verdict { retry, reread_token, fail };

struct Setback {
    Setback(Verdict v, CallError e) : verdict(v), failure(std::move(e)) {}
    Verdict verdict = Verdict::fail;
    CallError failure;                // the call's error if it ends here
    std::string retry_reason;         // Verdict::retry
    std::optional<std::chrono::milliseconds> retry_after;
};

// classify()'s answer for one attempt: the decoded data, or a setback.
template <class T>
using Decision = std::variant<T, Setback>;

// A 2xx body as read by a Reader: decoded data, a CDP refusal (code != 0), data that does
// not decode, or no envelope at all.
template <class T>
struct BodyRead {
    enum class Kind { decoded, refused, bad_data, malformed } kind = Kind::malformed;
    int code = 0;
    std::string msg;  // refused: the CDP's msg; bad_data, malformed: what is wrong
    std::optional<T> value;
};

// The envelope through parse_envelope's DOM, then `decode` on its data when code is 0.
template <class T, class F>
BodyRead<T> read_dom(const std::string& body, const F& decode) {
    using Kind = typename BodyRead<T>::Kind;
    BodyRead<T> r;
    Envelope env;
    try {
        env = parse_envelope(body);
    } catch (const std::exception& e) {  // ParseError, or anything nlohmann throws
        r.msg = e.what();
        return r;
    }
    r.code = env.code;
    if (env.code != 0) {
        r.kind = Kind::refused;
        r.msg = std::move(env.msg);
        return r;
    }
    try {
        r.value.emplace(decode(env.data));
        r.kind = Kind::decoded;
    } catch (const std::exception& e) {  // ParseError, nlohmann::json::exception
        r.kind = Kind::bad_data;
        r.msg = e.what();
    }
    return r;
}

template <class T, class F>
struct DomReader {
    F decode;
    BodyRead<T> operator()(const std::string& body) const { return read_dom<T>(body, decode); }
};

// Member pages: ids only through the SAX reader, falling back to the DOM for whatever it
// leaves (odd replies, whole records wanted), so both decide every body alike.
struct MemberPageReader {
    std::string id_field;
    MemberRecords keep = MemberRecords::whole;

    BodyRead<Page<Member>> operator()(const std::string& body) const {
        if (keep == MemberRecords::ids) {
            if (std::optional<MemberPageReply> fast = read_member_page_fast(body, id_field)) {
                BodyRead<Page<Member>> r;
                r.kind = BodyRead<Page<Member>>::Kind::decoded;
                r.value.emplace(std::move(fast->page));
                return r;
            }
        }
        return read_dom<Page<Member>>(body, [this](const json& data) { return decode(data); });
    }

    Page<Member> decode(const json& data) const {
        Page<Member> page = parse_page<Member>(data, [this](const json& r) { return parse_member(r, id_field); });
        if (keep == MemberRecords::ids)
            for (auto& m : page.records) m.record = json();
        return page;
    }
};

}  // namespace

const char* to_string(CallError::Kind kind) {
    switch (kind) {
    case CallError::Kind::transport: return "transport";
    case CallError::Kind::http_status: return "http_status";
    case CallError::Kind::cdp_code: return "cdp_code";
    case CallError::Kind::malformed: return "malformed";
    case CallError::Kind::auth: return "auth";
    case CallError::Kind::cancelled: return "cancelled";
    }
    return "unknown";
}

std::string CallError::describe() const {
    std::string s = "endpoint " + endpoint + ": ";
    switch (kind) {
    case Kind::transport:
        s += transport_kind ? http::to_string(*transport_kind) : "transport error";
        if (!msg.empty()) s += ": " + msg;
        break;
    case Kind::http_status:
    case Kind::cdp_code:
        s += "HTTP " + std::to_string(http_status);
        if (cdp_code) s += ", code " + std::to_string(*cdp_code);
        if (!msg.empty()) s += ": " + msg;
        break;
    case Kind::malformed:
        s += "malformed reply (HTTP " + std::to_string(http_status) + "): " + msg;
        break;
    case Kind::auth:
        s += "authentication refused";
        if (http_status) s += " (HTTP " + std::to_string(http_status);
        if (http_status && cdp_code) s += ", code " + std::to_string(*cdp_code);
        if (http_status) s += ")";
        if (!msg.empty()) s += ": " + msg;
        break;
    case Kind::cancelled:
        s += "cancelled";
        if (!msg.empty()) s += ": " + msg;
        break;
    }
    s += " (after " + std::to_string(attempts) + (attempts == 1 ? " attempt)" : " attempts)");
    return s;
}

bool CallError::transient() const {
    switch (kind) {
    case Kind::transport:
        return !transport_kind || (*transport_kind != http::ErrorKind::tls_verify &&
                                   *transport_kind != http::ErrorKind::cancelled);
    case Kind::http_status: return is_5xx_429_408(http_status);
    case Kind::cdp_code:
        return cdp_code && ((*cdp_code == -1 && is_transient_msg(msg)) || is_http_status_code(*cdp_code));
    case Kind::malformed: return not_json;
    default: return false;
    }
}

bool is_transient_msg(const std::string& msg) {
    const std::string m = lower_ascii(msg);
    return contains_any(m, {"系统繁忙", "繁忙", "稍后再试", "稍后重试", "请求过于频繁", "频繁",
                            "超时", "限流", "busy", "timeout", "timed out", "too many requests",
                            "rate limit", "try again", "temporarily unavailable"});
}

bool is_unknown_customer_msg(const std::string& msg) {
    const std::string m = lower_ascii(msg);
    return contains_any(m, {"客户不存在", "customer not exist", "customer does not exist", "customer not found",
                            "no such customer"});
}

bool is_unknown_group_msg(const std::string& msg) {
    const std::string m = lower_ascii(msg);
    return contains_any(m, {"群组不存在", "group not exist", "group does not exist", "group not found",
                            "no such group"});
}

bool is_smart_group_msg(const std::string& msg) {
    const std::string m = lower_ascii(msg);
    return contains_any(m, {"智能群组", "smart group"});
}

bool is_auth_msg(const std::string& msg) {
    const std::string m = lower_ascii(msg);
    if (contains_any(m, {"unauthorized", "unauthorised", "未授权", "未登录", "鉴权失败", "认证失败",
                         "登录过期", "登录失效", "access denied"}))
        return true;
    const bool names_token = contains_any(m, {"token", "令牌", "秘钥", "密钥", "访问凭证"});
    return names_token && contains_any(m, {"invalid", "expired", "illegal", "missing", "无效", "失效",
                                           "过期", "非法", "错误", "不存在", "为空", "缺少", "不正确"});
}

ApiOptions ApiOptions::from_config(const config::CdpConfig& cdp) {
    ApiOptions o;
    o.http.base_url = cdp.base_url;
    o.http.ca_file = cdp.ca_file;
    o.http.max_in_flight = cdp.max_in_flight;
    o.http.rate_limit_qps = cdp.rate_limit_qps;
    o.http.timeout = std::chrono::milliseconds(cdp.timeout_ms);
    o.retry.max_attempts = cdp.retry.max_attempts;
    o.retry.base_delay = std::chrono::milliseconds(cdp.retry.base_delay_ms);
    o.retry.max_delay = std::chrono::milliseconds(cdp.retry.max_delay_ms);
    o.customer_id_field = cdp.customer_id_field;  // "" = customerId when present, else id
    o.page_size = cdp.page_size;
    o.max_pages_in_flight = std::max(1, cdp.max_in_flight);
    return o;
}

struct Api::Impl {
    Impl(net::any_io_executor ex, ApiOptions opt, config::TokenSource token_source,
         std::shared_ptr<spdlog::logger> lg)
        : executor(ex),
          options(std::move(opt)),
          tokens(std::move(token_source)),
          log(lg ? std::move(lg) : logging::logger("cdp")),
          client(ex, options.http, logging::logger("http")),
          backoff(options.retry) {
        options.page_size = std::max<int64_t>(1, options.page_size);
        options.max_pages_in_flight = std::max(1, options.max_pages_in_flight);
        options.retry.max_attempts = std::max(1, options.retry.max_attempts);
    }

    net::any_io_executor executor;
    ApiOptions options;
    config::TokenSource tokens;
    std::shared_ptr<spdlog::logger> log;
    http::Client client;
    http::Backoff backoff;
    std::optional<config::Secret> token;
    uint64_t token_generation = 0;
    ApiStats stats;
    bool stopped = false;
    std::set<net::steady_timer*> sleepers;
    std::atomic<uint64_t>* progress = nullptr;

    // One attempt's outcome in the stats: ok, cdp_code, http_error, transport, malformed, auth
    // or cancelled.
    void count_attempt(const std::string& endpoint, const char* outcome, unsigned http_status) {
        ++stats.attempts_by_endpoint[endpoint][outcome];
        if (http_status == 429) ++stats.http_429;
        if (progress) progress->fetch_add(1, std::memory_order_relaxed);
    }

    CallError error(CallError::Kind kind, const std::string& endpoint, std::string msg, int attempts,
                    unsigned status = 0) {
        CallError e;
        e.kind = kind;
        e.endpoint = endpoint;
        e.msg = std::move(msg);
        e.attempts = attempts;
        e.http_status = status;
        return e;
    }

    template <class T>
    Result<T> fail(CallError e) {
        ++stats.failures;
        log->debug("call failed: {}", e.describe());
        return outcome::failure(std::move(e));
    }

    // Reads the token (again, when `force`), returning an error message on failure.
    std::optional<std::string> load_token(bool force) {
        if (token && !force) return std::nullopt;
        try {
            token = tokens.read();
            ++token_generation;
            if (force) ++stats.token_rereads;
        } catch (const config::TokenError& e) {
            return std::string("cannot read the token: ") + e.what();
        }
        if (token->empty()) {
            token.reset();
            return "the token from " + tokens.describe() + " is empty";
        }
        return std::nullopt;
    }

    // Sleeps on a steady_timer that stop() can cancel; false when cancelled.
    net::awaitable<bool> sleep(std::chrono::milliseconds delay) {
        net::steady_timer timer(executor, delay);
        sleepers.insert(&timer);
        boost::system::error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        sleepers.erase(&timer);
        co_return !ec && !stopped;
    }

    // One API call with retries and the token re-read; `read` turns a 2xx body into the
    // envelope's code/msg and the decoded data (a decoding failure is a malformed reply).
    // `abandon` (optional) stops further retries when set: a pager that gave up on its window.
    // `repeatable` false (a create): an attempt that may have been applied (timeout, reset, 5xx,
    // an unreadable reply) is not sent again; only a refused connection or a 429 is.
    template <class T, class Reader>
    net::awaitable<Result<T>> call(http::Request request, Reader read, std::shared_ptr<const bool> abandon = {},
                                   bool repeatable = true) {
        CallState state{request.path};
        for (;;) {
            if (std::optional<CallError> refused = before_attempt(state)) co_return fail<T>(std::move(*refused));
            http::Result result = co_await send_attempt(request, state);
            Decision<T> decision = classify<T>(result, read, state);
            if (T* value = std::get_if<T>(&decision)) co_return outcome::success(std::move(*value));
            Setback& setback = std::get<Setback>(decision);
            switch (setback.verdict) {
            case Verdict::fail: co_return fail<T>(std::move(setback.failure));
            case Verdict::reread_token:
                if (!reread_token(setback.failure, state)) co_return fail<T>(std::move(setback.failure));
                continue;
            case Verdict::retry:
                if (!may_retry(result, state, abandon, repeatable)) co_return fail<T>(std::move(setback.failure));
                if (!co_await wait_before_retry(setback, state)) {
                    setback.failure.kind = CallError::Kind::cancelled;
                    co_return fail<T>(std::move(setback.failure));
                }
                continue;
            }
        }
    }

    // Why the call cannot even send its next attempt: stopped, or no usable token.
    std::optional<CallError> before_attempt(const CallState& s) {
        if (stopped) return error(CallError::Kind::cancelled, s.endpoint, "", s.attempt);
        if (auto problem = load_token(false)) return error(CallError::Kind::auth, s.endpoint, *problem, s.attempt);
        return std::nullopt;
    }

    net::awaitable<http::Result> send_attempt(const http::Request& request, CallState& s) {
        s.generation = token_generation;
        http::Request req = request;
        req.headers.push_back({"Content-Type", "application/json"});
        req.headers.push_back({"token", token->reveal()});
        ++s.attempt;
        ++stats.calls;
        if (s.attempt > 1) ++stats.retries;
        http::Result result = co_await client.send(std::move(req));
        co_return result;
    }

    // What one attempt's outcome means for the call.
    template <class T, class Reader>
    Decision<T> classify(const http::Result& result, const Reader& read, const CallState& s) {
        if (result.has_error()) return transport_setback(result, s);
        const http::Response& resp = result.value();
        if (resp.status < 200 || resp.status > 299) return status_setback(resp, result, s);
        BodyRead<T> body = read(resp.body);
        return body_decision<T>(resp, std::move(body), s);
    }

    Setback transport_setback(const http::Result& result, const CallState& s) {
        const http::TransportError& te = result.error();
        const bool cancelled = te.kind == http::ErrorKind::cancelled || stopped;
        count_attempt(s.endpoint, cancelled ? "cancelled" : "transport", 0);
        if (cancelled) return Setback{Verdict::fail, error(CallError::Kind::cancelled, s.endpoint, te.message, s.attempt)};
        Setback sb{Verdict::fail, error(CallError::Kind::transport, s.endpoint, te.message, s.attempt)};
        sb.failure.transport_kind = te.kind;
        retry_if(sb, http::transient_reason(result));
        return sb;
    }

    // A non-2xx status: refused credentials (401/403) re-read the token, others may retry.
    Setback status_setback(const http::Response& resp, const http::Result& result, const CallState& s) {
        const bool refused = resp.status == 401 || resp.status == 403;
        count_attempt(s.endpoint, refused ? "auth" : "http_error", resp.status);
        const auto kind = refused ? CallError::Kind::auth : CallError::Kind::http_status;
        Setback sb{refused ? Verdict::reread_token : Verdict::fail, error(kind, s.endpoint, "", s.attempt, resp.status)};
        decorate_from_body(sb.failure, resp.body);
        if (refused) return sb;
        retry_if(sb, http::transient_reason(result));
        if (resp.retry_after) sb.retry_after = http::parse_retry_after(*resp.retry_after);
        return sb;
    }

    template <class T>
    Decision<T> body_decision(const http::Response& resp, BodyRead<T>&& body, const CallState& s) {
        switch (body.kind) {
        case BodyRead<T>::Kind::decoded: count_attempt(s.endpoint, "ok", resp.status); return std::move(*body.value);
        case BodyRead<T>::Kind::bad_data:
            count_attempt(s.endpoint, "ok", resp.status);
            return Setback{Verdict::fail, error(CallError::Kind::malformed, s.endpoint, body.msg, s.attempt, resp.status)};
        case BodyRead<T>::Kind::malformed: return malformed_setback(resp, std::move(body.msg), s);
        case BodyRead<T>::Kind::refused: break;
        }
        return code_setback(body.code, std::move(body.msg), resp.status, s);
    }

    // A 2xx body that is no envelope. An HTML page or a cut body with 200 comes from something
    // between us and the CDP and passes; JSON of the wrong shape would come back the same.
    Setback malformed_setback(const http::Response& resp, std::string problem, const CallState& s) {
        count_attempt(s.endpoint, "malformed", resp.status);
        Setback sb{Verdict::fail, error(CallError::Kind::malformed, s.endpoint, std::move(problem), s.attempt, resp.status)};
        if (json::accept(resp.body)) return sb;
        sb.failure.not_json = true;
        retry_if(sb, std::string("the reply is not JSON"));
        return sb;
    }

    // HTTP 200 with code != 0: an auth msg re-reads the token, a transient one retries.
    Setback code_setback(int code, std::string msg, unsigned status, const CallState& s) {
        const bool auth_msg = is_auth_msg(msg);
        count_attempt(s.endpoint, auth_msg ? "auth" : "cdp_code", status);
        Setback sb{Verdict::fail, error(CallError::Kind::cdp_code, s.endpoint, std::move(msg), s.attempt, status)};
        sb.failure.cdp_code = code;
        if (auth_msg) {
            sb.failure.kind = CallError::Kind::auth;
            sb.verdict = Verdict::reread_token;
        } else if (code == -1 && is_transient_msg(sb.failure.msg)) {
            retry_if(sb, "code -1: " + sb.failure.msg);
        } else if (is_http_status_code(code)) {
            // A gateway or the CDP itself putting the HTTP status in the body.
            retry_if(sb, "code " + std::to_string(code) + " in an HTTP 200 body");
        }
        return sb;
    }

    static void retry_if(Setback& sb, std::optional<std::string> reason) {
        if (!reason) return;
        sb.verdict = Verdict::retry;
        sb.retry_reason = std::move(*reason);
    }

    // Refused credentials: re-read the token once per call (another call may have re-read it
    // meanwhile; then just try the new one). False when the call must fail.
    bool reread_token(CallError& failure, CallState& s) {
        if (s.reread_used) return false;
        s.reread_used = true;
        if (s.generation == token_generation) {
            if (auto problem = load_token(true)) {
                failure.msg += failure.msg.empty() ? *problem : "; " + *problem;
                return false;
            }
        }
        log->debug("{}: credentials refused, retrying with the token re-read from {}", s.endpoint, tokens.describe());
        return true;
    }

    bool may_retry(const http::Result& result, const CallState& s, const std::shared_ptr<const bool>& abandon,
                   bool repeatable) const {
        if (s.attempt >= options.retry.max_attempts || (abandon && *abandon)) return false;
        return repeatable || never_applied(result);
    }

    // The backoff before the next attempt; false when stop() cancelled the wait.
    net::awaitable<bool> wait_before_retry(const Setback& sb, CallState& s) {
        ++s.transient_failures;
        const auto delay = backoff.delay(s.transient_failures, sb.retry_after);
        log->debug("{}: attempt {}/{} failed ({}), retrying in {} ms", s.endpoint, s.attempt,
                   options.retry.max_attempts, sb.retry_reason, delay.count());
        const bool slept = co_await sleep(delay);
        co_return slept;
    }

    // The attempt certainly did not reach the CDP's logic: no connection, or a 429.
    static bool never_applied(const http::Result& result) {
        if (result.has_error())
            return result.error().kind == http::ErrorKind::resolve || result.error().kind == http::ErrorKind::connect;
        return result.value().status == 429;
    }

    // Fills msg/code of an error reply from its body when it is a CDP envelope, else a snippet.
    static void decorate_from_body(CallError& e, const std::string& body) {
        try {
            Envelope env = parse_envelope(body);
            e.cdp_code = env.code;
            e.msg = env.msg;
            return;
        } catch (const std::exception&) {
        }
        e.msg = snippet(body);
    }

    // A call whose data is decoded by `decode` from the envelope's DOM.
    template <class T, class F>
    net::awaitable<Result<T>> typed(http::Request request, F decode,
                                    std::shared_ptr<const bool> abandon = {}, bool repeatable = true) {
        DomReader<T, F> reader{std::move(decode)};
        co_return co_await call<T>(std::move(request), std::move(reader), std::move(abandon), repeatable);
    }

    static http::Request get(const char* path, std::vector<std::pair<std::string, std::string>> query) {
        http::Request r;
        r.method = http::Method::get;
        r.path = path;
        r.query = std::move(query);
        return r;
    }

    static http::Request post(const char* path, const json& body) {
        http::Request r;
        r.method = http::Method::post;
        r.path = path;
        r.body = body.dump();
        return r;
    }

    using Query = std::vector<std::pair<std::string, std::string>>;
    static Query query1(const char* name, int64_t value) { return query1(name, std::to_string(value)); }
    static Query query1(const char* name, std::string value) {
        Query q;
        q.emplace_back(name, std::move(value));
        return q;
    }

    // Decoders of `data`. GCC 12 miscompiles closures with captures that are temporaries of
    // a co_await expression, so coroutines pass plain functions or named local objects.
    static Done ignore_data(const json&) { return Done{}; }
    static Page<Group> decode_group_page(const json& data) { return parse_page<Group>(data, parse_group); }
    static std::vector<Folder> decode_folders(const json& data) { return decode_list<Folder>(data, parse_folder); }
    static std::vector<CustomerGroup> decode_customer_groups(const json& data) {
        return decode_list<CustomerGroup>(data, parse_customer_group);
    }
    net::awaitable<Result<Page<Group>>> query_groups(GroupQuery q, std::shared_ptr<const bool> abandon = {}) {
        Query query;
        if (!q.search_key.empty()) query.emplace_back("searchKey", q.search_key);
        if (q.folder_id) query.emplace_back("groupId", std::to_string(*q.folder_id));
        query.emplace_back("current", std::to_string(q.current));
        query.emplace_back("size", std::to_string(q.size));
        http::Request request = get(path::simple_query, std::move(query));
        co_return co_await typed<Page<Group>>(std::move(request), decode_group_page, std::move(abandon));
    }

    net::awaitable<Result<Page<Member>>> members_page(int64_t group_id, int64_t current, int64_t size,
                                                      MemberRecords keep, std::shared_ptr<const bool> abandon = {}) {
        Query query = query1("customerGroupId", group_id);
        query.emplace_back("current", std::to_string(current));
        query.emplace_back("size", std::to_string(size));
        http::Request request = get(path::members_page, std::move(query));
        MemberPageReader reader{options.customer_id_field, keep};
        co_return co_await call<Page<Member>>(std::move(request), std::move(reader), std::move(abandon));
    }

    // Pager ------------------------------------------------------------------------------

    template <class T>
    using Fetch = std::function<net::awaitable<Result<Page<T>>>(int64_t current, int64_t size,
                                                                std::shared_ptr<const bool> abandon)>;
    template <class T>
    using Sink = std::function<void(int64_t page_number, Page<T>&& page)>;
    template <class T>
    using AwaitedSink = std::function<net::awaitable<void>(int64_t page_number, Page<T> page)>;

    template <class T>
    static net::awaitable<void> call_sink(const Sink<T>& sink, int64_t page_number, Page<T> page) {
        sink(page_number, std::move(page));
        co_return;
    }
    // A plain sink as an awaited one; `sink` must outlive the pager.
    template <class T>
    static AwaitedSink<T> awaited(const Sink<T>& sink) {
        return [&sink](int64_t page_number, Page<T> page) { return call_sink(sink, page_number, std::move(page)); };
    }

    // The page size the server really uses: a first page shorter than asked while the total
    // says there is more means the server caps `size`; later pages must ask for that cap so
    // that page numbers mean the same offsets to both sides.
    static int64_t effective_size(int64_t asked, size_t n, int64_t total) {
        if (n > 0 && static_cast<int64_t>(n) < asked && total > static_cast<int64_t>(n))
            return static_cast<int64_t>(n);
        return asked;
    }

    template <class T>
    struct Window {
        explicit Window(net::any_io_executor ex) : notify(ex) {}
        http::Wakeup notify;  // whenever a fetch completes
        struct Slot {
            std::exception_ptr exception;
            std::optional<Result<Page<T>>> result;  // unless exception
        };
        std::map<int64_t, Slot> ready;
        int in_flight = 0;
        std::shared_ptr<bool> abandon = std::make_shared<bool>(false);
    };

    // How a walk ended: every page delivered, or stopped at the first for its page budget.
    enum class Paged { all, over_budget };

    // Where the pager stands: the page in hand, its number, and the fetches ahead of it.
    template <class T>
    struct Walk {
        Page<T> page;
        int64_t size = 0;         // records a full page holds
        int64_t first_page = 1;
        int64_t page_number = 1;  // of `page`
        int64_t next_spawn = 2;
        int64_t spawn_limit = 1;
        std::optional<CallError> failure;
        std::exception_ptr thrown;
    };

    template <class T>
    static net::awaitable<void> wait_change(Window<T>& w) {
        co_await w.notify.wait();
    }

    template <class T>
    void spawn_fetch(const std::shared_ptr<Window<T>>& w, const Fetch<T>& fetch, int64_t page, int64_t size) {
        ++w->in_flight;
        net::co_spawn(
            executor,
            [w, fetch, page, size]() -> net::awaitable<void> {
                typename Window<T>::Slot slot;
                try {
                    std::shared_ptr<const bool> abandon = w->abandon;
                    slot.result.emplace(co_await fetch(page, size, std::move(abandon)));
                } catch (...) {
                    slot.exception = std::current_exception();
                }
                --w->in_flight;
                w->ready.insert_or_assign(page, std::move(slot));
                w->notify.notify_all();
            },
            net::detached);
    }

    // The first page to hand over, and the page size the server really uses.
    template <class T>
    net::awaitable<Result<Walk<T>>> start_walk(const char* endpoint, const Fetch<T>& fetch, int64_t first_page) {
        const int64_t asked = options.page_size;
        const std::shared_ptr<const bool> never_abandoned;
        Result<Page<T>> first = co_await fetch(first_page, asked, never_abandoned);
        if (!first.has_value()) co_return outcome::failure(std::move(first.error()));
        int64_t size = asked;
        if (first_page == 1) {
            size = effective_size(asked, first.value().records.size(), first.value().total);
        } else if (static_cast<int64_t>(first.value().records.size()) < asked) {
            // Short page while resuming: the last page, or a capped server. Page 1 tells.
            Result<Page<T>> probe = co_await fetch(1, asked, never_abandoned);
            if (!probe.has_value()) co_return outcome::failure(std::move(probe.error()));
            size = effective_size(asked, probe.value().records.size(), probe.value().total);
            if (size != asked) {
                first = co_await fetch(first_page, size, never_abandoned);
                if (!first.has_value()) co_return outcome::failure(std::move(first.error()));
            }
        }
        if (size != asked)
            log->debug("{}: server returns at most {} records a page (asked {})", endpoint, size, asked);
        Walk<T> walk{std::move(first.value()), size, first_page, first_page, first_page + 1, first_page, {}, {}};
        co_return outcome::success(std::move(walk));
    }

    // The last page the page in hand's total implies. `total` comes from the wire: no
    // arithmetic on it that could overflow.
    template <class T>
    static int64_t last_by_total(const Walk<T>& w) {
        return w.page.total <= 0 ? 0 : w.page.total / w.size + (w.page.total % w.size != 0);
    }

    // A short page proves the end, and so does a full page ending exactly at the total that
    // same reply counted (saves the empty read after a group whose size is a multiple of the
    // page size). A full page past the total proves the total stale: keep reading until a
    // short page.
    template <class T>
    static bool is_last_page(const Walk<T>& w) {
        const int64_t n = static_cast<int64_t>(w.page.records.size());
        const int64_t total = w.page.total;
        return n == 0 || (n < w.size && w.page_number >= last_by_total(w)) ||
               (n == w.size && total > 0 && total % w.size == 0 && total / w.size == w.page_number);
    }

    // Hands the page in hand to the sink (an empty page only when it is the first); false
    // when the sink threw.
    template <class T>
    static net::awaitable<bool> deliver(Walk<T>& w, const AwaitedSink<T>& sink) {
        if (w.page.records.empty() && w.page_number != w.first_page) co_return true;
        try {
            co_await sink(w.page_number, std::move(w.page));
            co_return true;
        } catch (...) {
            w.thrown = std::current_exception();
            co_return false;
        }
    }

    // Keeps up to `width` pages in flight: through the expected last page, and one page at a
    // time beyond it while pages stay full (the total grew).
    template <class T>
    void fill_window(Walk<T>& w, const std::shared_ptr<Window<T>>& window, const Fetch<T>& fetch) {
        w.spawn_limit = std::max({w.spawn_limit, last_by_total(w), w.page_number + 1});
        while (window->in_flight < options.max_pages_in_flight && w.next_spawn <= w.spawn_limit)
            spawn_fetch<T>(window, fetch, w.next_spawn++, w.size);
    }

    // Waits for the next page in order; false when its fetch failed or threw.
    template <class T>
    static net::awaitable<bool> take_next(Walk<T>& w, Window<T>& window) {
        ++w.page_number;
        while (!window.ready.count(w.page_number)) co_await wait_change(window);
        auto slot = std::move(window.ready.at(w.page_number));
        window.ready.erase(w.page_number);
        if (slot.exception) {
            w.thrown = slot.exception;
            co_return false;
        }
        if (slot.result->has_error()) {
            w.failure = std::move(slot.result->error());
            co_return false;
        }
        w.page = std::move(slot.result->value());
        co_return true;
    }

    // With `max_pages` (> 0), a walk whose first page's total implies more pages than that
    // ends there, nothing delivered: Paged::over_budget.
    template <class T>
    net::awaitable<Result<Paged>> paginate(const char* endpoint, Fetch<T> fetch, AwaitedSink<T> sink,
                                           int64_t first_page, int64_t max_pages = 0) {
        Result<Walk<T>> started = co_await start_walk<T>(endpoint, fetch, std::max<int64_t>(1, first_page));
        if (!started.has_value()) co_return outcome::failure(std::move(started.error()));
        Walk<T>& w = started.value();
        if (max_pages > 0 && last_by_total(w) > max_pages) co_return outcome::success(Paged::over_budget);
        auto window = std::make_shared<Window<T>>(executor);
        for (;;) {
            const bool last = is_last_page(w);
            const bool delivered = co_await deliver(w, sink);
            if (!delivered || last) break;
            if (w.page_number - 100000 > last_by_total(w)) {
                w.failure = error(CallError::Kind::malformed, endpoint,
                                  "paging does not end: page " + std::to_string(w.page_number) +
                                      " is still full with total " + std::to_string(w.page.total),
                                  1, 200);
                ++stats.failures;
                break;
            }
            fill_window(w, window, fetch);
            if (!co_await take_next(w, *window)) break;
        }
        // Never leave fetches running behind the caller's back: they reference this Api.
        *window->abandon = true;
        while (window->in_flight > 0) co_await wait_change(*window);
        if (w.thrown) std::rethrow_exception(w.thrown);
        if (w.failure) co_return outcome::failure(std::move(*w.failure));
        co_return outcome::success(Paged::all);
    }
};

Api::Api(net::any_io_executor executor, ApiOptions options, config::TokenSource token,
         std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(executor, std::move(options), std::move(token), std::move(log))) {}

Api::~Api() = default;

net::awaitable<Result<int64_t>> Api::create_group(CreateGroup request) {
    http::Request http_request = Impl::post(path::add_group, to_json(request));
    co_return co_await impl_->typed<int64_t>(std::move(http_request), decode_id, {}, false);
}

net::awaitable<Result<Done>> Api::delete_group(int64_t group_id) {
    http::Request request = Impl::get(path::delete_group, Impl::query1("customerGroupId", group_id));
    co_return co_await impl_->typed<Done>(std::move(request), Impl::ignore_data);
}

net::awaitable<Result<Done>> Api::update_group(UpdateGroup request) {
    http::Request http_request = Impl::post(path::update_group, to_json(request));
    co_return co_await impl_->typed<Done>(std::move(http_request), Impl::ignore_data);
}

net::awaitable<Result<Page<Group>>> Api::query_groups(GroupQuery query) {
    co_return co_await impl_->query_groups(std::move(query));
}

net::awaitable<Result<std::vector<Group>>> Api::query_all_groups(std::string search_key,
                                                                 std::optional<int64_t> folder_id) {
    auto listed = co_await query_groups_within(std::move(search_key), std::move(folder_id), 0);
    if (!listed.has_value()) co_return outcome::failure(std::move(listed.error()));
    co_return outcome::success(std::move(listed.value()->groups));
}

net::awaitable<Result<std::optional<GroupList>>> Api::query_groups_within(std::string search_key,
                                                                         std::optional<int64_t> folder_id,
                                                                         int64_t max_pages) {
    GroupList list;
    std::unordered_set<int64_t> seen;  // a group may shift onto the next page while paging
    Impl* impl = impl_.get();
    Impl::Fetch<Group> fetch = [impl, search_key, folder_id](int64_t current, int64_t size,
                                                             std::shared_ptr<const bool> abandon) {
        return impl->query_groups(GroupQuery{search_key, folder_id, current, size}, std::move(abandon));
    };
    Impl::Sink<Group> sink = [&list, &seen](int64_t, Page<Group>&& page) {
        list.total = page.total;  // the last page's word
        for (auto& g : page.records)
            if (seen.insert(g.id).second) list.groups.push_back(std::move(g));
    };
    Impl::AwaitedSink<Group> awaited_sink = Impl::awaited(sink);
    Result<Impl::Paged> paged =
        co_await impl_->paginate<Group>(path::simple_query, std::move(fetch), std::move(awaited_sink), 1, max_pages);
    if (!paged.has_value()) co_return outcome::failure(std::move(paged.error()));
    if (paged.value() == Impl::Paged::over_budget) co_return outcome::success(std::nullopt);
    co_return outcome::success(std::optional<GroupList>(std::move(list)));
}

net::awaitable<Result<int64_t>> Api::add_folder(std::string name, std::string parent_code) {
    json body{{"businessType", kBusinessType}, {"name", name}};
    if (!parent_code.empty()) body["parentCode"] = parent_code;
    http::Request request = Impl::post(path::folder_add, body);
    co_return co_await impl_->typed<int64_t>(std::move(request), decode_id, {}, false);
}

net::awaitable<Result<Done>> Api::delete_folder(int64_t folder_id) {
    // The spec says "customer_label" here; DESIGN.md decides "customer_group" everywhere.
    json body{{"businessType", kBusinessType}, {"commonGroupId", folder_id}};
    http::Request request = Impl::post(path::folder_delete, body);
    co_return co_await impl_->typed<Done>(std::move(request), Impl::ignore_data);
}

net::awaitable<Result<Done>> Api::update_folder(int64_t folder_id, std::string name) {
    json body{{"businessType", kBusinessType}, {"commonGroupId", folder_id}, {"name", name}};
    http::Request request = Impl::post(path::folder_update, body);
    co_return co_await impl_->typed<Done>(std::move(request), Impl::ignore_data);
}

net::awaitable<Result<std::vector<Folder>>> Api::folder_tree() {
    http::Request request = Impl::get(path::folder_tree, Impl::query1("businessType", kBusinessType));
    co_return co_await impl_->typed<std::vector<Folder>>(std::move(request), Impl::decode_folders);
}

net::awaitable<Result<Done>> Api::customer_add_groups(MembershipChange change) {
    http::Request request = Impl::post(path::customer_add_groups, to_json(change));
    co_return co_await impl_->typed<Done>(std::move(request), Impl::ignore_data);
}

net::awaitable<Result<Done>> Api::customer_delete_groups(MembershipChange change) {
    http::Request request = Impl::post(path::customer_delete_groups, to_json(change));
    co_return co_await impl_->typed<Done>(std::move(request), Impl::ignore_data);
}

net::awaitable<Result<Done>> Api::customer_update_groups(MembershipChange change) {
    http::Request request = Impl::post(path::customer_update_groups, to_json(change));
    co_return co_await impl_->typed<Done>(std::move(request), Impl::ignore_data);
}

net::awaitable<Result<Page<Member>>> Api::members_page(int64_t group_id, int64_t current, int64_t size) {
    co_return co_await impl_->members_page(group_id, current, size, MemberRecords::whole);
}

net::awaitable<Result<std::vector<CustomerGroup>>> Api::groups_of_customer(int64_t customer_id, int type) {
    Impl::Query query = Impl::query1("customerId", customer_id);
    query.emplace_back("type", std::to_string(type));
    http::Request request = Impl::get(path::groups_by_customer, std::move(query));
    co_return co_await impl_->typed<std::vector<CustomerGroup>>(std::move(request), Impl::decode_customer_groups);
}

net::awaitable<Result<Done>> Api::for_each_member_page(int64_t group_id, MemberPageHandler on_page,
                                                       int64_t first_page, MemberRecords keep) {
    const Impl::Sink<Member> sink = std::move(on_page);
    MemberPageSink awaited_sink = Impl::awaited(sink);
    co_return co_await for_each_member_page_awaited(group_id, std::move(awaited_sink), first_page, keep);
}

net::awaitable<Result<Done>> Api::for_each_member_page_awaited(int64_t group_id, MemberPageSink on_page,
                                                               int64_t first_page, MemberRecords keep) {
    Impl* impl = impl_.get();
    Impl::Fetch<Member> fetch = [impl, group_id, keep](int64_t current, int64_t size,
                                                       std::shared_ptr<const bool> abandon) {
        return impl->members_page(group_id, current, size, keep, std::move(abandon));
    };
    Result<Impl::Paged> paged =
        co_await impl_->paginate<Member>(path::members_page, std::move(fetch), std::move(on_page), first_page);
    if (!paged.has_value()) co_return outcome::failure(std::move(paged.error()));
    co_return outcome::success(Done{});
}

ApiStats Api::stats() const { return impl_->stats; }

http::Client& Api::http_client() { return impl_->client; }

void Api::set_rate_limit(double qps) { impl_->client.set_rate_limit(qps); }

void Api::count_progress_in(std::atomic<uint64_t>* counter) { impl_->progress = counter; }

void Api::stop() {
    impl_->stopped = true;
    for (auto* timer : impl_->sleepers) timer->cancel();
    impl_->client.stop();
}

}  // namespace cdpsync::cdp
