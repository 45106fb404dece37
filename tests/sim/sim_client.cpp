#include "sim_client.hpp"

#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gtest/gtest.h>

namespace cdpsync::sim::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

nlohmann::json Response::json() const { return nlohmann::json::parse(body); }

struct Client::Impl {
    uint16_t port;
    bool tls;
    net::io_context ioc;
    ssl::context ctx{ssl::context::tls_client};
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;

    beast::tcp_stream& lowest() { return tls ? secure->next_layer() : *plain; }
    bool connected() const { return tls ? secure != nullptr : plain != nullptr; }

    void connect() {
        buffer.clear();
        tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
        if (!tls) {
            plain = std::make_unique<beast::tcp_stream>(ioc);
            plain->expires_after(std::chrono::seconds(10));
            plain->connect(ep);
            plain->socket().set_option(tcp::no_delay(true));
            return;
        }
        secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, ctx);
        // Connect, name the server (SNI), verify its name, then handshake.
        secure->next_layer().expires_after(std::chrono::seconds(10));
        secure->next_layer().connect(ep);
        if (!SSL_set_tlsext_host_name(secure->native_handle(), "localhost"))
            throw std::runtime_error("SNI failed");
        secure->set_verify_callback(ssl::host_name_verification("localhost"));
        secure->handshake(ssl::stream_base::client);
    }
    void drop() {
        plain.reset();
        secure.reset();
    }

    template <class Stream>
    Response exchange(Stream& stream, http::request<http::string_body>& req) {
        Response out;
        beast::error_code ec;
        http::write(stream, req, ec);
        if (ec) {
            out.error = "write: " + ec.message();
            return out;
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(1024ull * 1024 * 1024);
        http::read(stream, buffer, parser, ec);
        if (ec) {
            out.error = "read: " + ec.message();
            return out;
        }
        auto res = parser.release();
        out.status = static_cast<int>(res.result_int());
        for (const auto& f : res) {
            std::string name(f.name_string());
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            out.headers[name] = std::string(f.value());
        }
        out.body = res.body();
        if (!res.keep_alive()) drop();
        return out;
    }
};

Client::Client(uint16_t port, bool tls, std::string ca_file) : impl_(std::make_unique<Impl>()) {
    impl_->port = port;
    impl_->tls = tls;
    if (tls) {
        impl_->ctx.set_verify_mode(ssl::verify_peer);
        impl_->ctx.load_verify_file(ca_file);
    }
}

Client::~Client() = default;

Response Client::request(const std::string& method, const std::string& target, const std::string& body,
                         const std::string& content_type) {
    http::request<http::string_body> req;
    req.method(http::string_to_verb(method));
    req.target(target);
    req.version(11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, content_type);
    if (send_token) req.set("token", token);
    req.keep_alive(true);
    if (!body.empty() || method != "GET") {
        req.body() = body;
        req.prepare_payload();
    }
    Response out;
    try {
        if (!impl_->connected()) impl_->connect();
        out = impl_->tls ? impl_->exchange(*impl_->secure, req) : impl_->exchange(*impl_->plain, req);
    } catch (const std::exception& e) {
        out.error = std::string("connect: ") + e.what();
    }
    if (!out.error.empty()) impl_->drop();
    return out;
}

Response Client::get(const std::string& target) { return request("GET", target, ""); }
Response Client::post(const std::string& target, const nlohmann::json& body) {
    return request("POST", target, body.dump());
}
Response Client::put(const std::string& target, const nlohmann::json& body) {
    return request("PUT", target, body.dump());
}

nlohmann::json Client::cdp_get(const std::string& path_and_query) {
    Response r = get("/openapi" + path_and_query);
    EXPECT_EQ(r.status, 200) << path_and_query << ": " << r.error << r.body;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
}

nlohmann::json Client::cdp_post(const std::string& path, const nlohmann::json& body) {
    Response r = post("/openapi" + path, body);
    EXPECT_EQ(r.status, 200) << path << ": " << r.error << r.body;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
}

std::pair<std::string, int> post_expecting_continue(uint16_t port, const std::string& target,
                                                    const std::string& body) {
    net::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    // The headers alone, announcing the body.
    const std::string head = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                             "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    net::write(stream, net::buffer(head));
    // The interim reply, if the server sends one before the deadline (Beast's deadlines
    // only bound asynchronous operations, hence async + run).
    std::string interim;
    beast::flat_buffer buffer;
    beast::error_code ec;
    auto done = [&](beast::error_code e, std::size_t) { ec = e; };
    stream.expires_after(std::chrono::seconds(5));
    http::response_parser<http::empty_body> first;
    http::async_read_header(stream, buffer, first, done);
    ioc.run();
    ioc.restart();
    if (ec) return {"", 0};
    interim = std::to_string(first.get().result_int()) + " " + std::string(first.get().reason());
    // The body, then the final reply.
    net::write(stream, net::buffer(body));
    http::response<http::string_body> res;
    stream.expires_after(std::chrono::seconds(5));
    http::async_read(stream, buffer, res, done);
    ioc.run();
    return {interim, ec ? 0 : static_cast<int>(res.result_int())};
}

}  // namespace cdpsync::sim::test
