// Helpers for the cdp::Api tests: a temporary token file, fast retry options, and a way to
// run one Api call to completion on a private io_context.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <boost/asio/io_context.hpp>

#include "cdp/api.hpp"
#include "support/test_server.hpp"

namespace cdpsync::cdp::test {

namespace fs = std::filesystem;

class TempDir {
public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "cdp-api-test-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }
    fs::path write(const std::string& name, const std::string& content) const {
        const fs::path p = path_ / name;
        std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
        return p;
    }

private:
    fs::path path_;
};

// The token lives in a file so a test can change it between calls.
struct TokenFile {
    TempDir dir;
    fs::path path;
    explicit TokenFile(const std::string& token) : path(dir.write("token", token + "\n")) {}
    void set(const std::string& token) const { dir.write("token", token + "\n"); }
    config::TokenSource source() const {
        config::CdpConfig cdp;
        cdp.token_file = path.string();
        return config::TokenSource(cdp);
    }
};

inline ApiOptions fast_options(const std::string& base_url, int max_attempts = 4) {
    ApiOptions o;
    o.http.base_url = base_url;
    o.http.rate_limit_qps = 0;
    o.http.max_in_flight = 8;
    o.http.timeout = std::chrono::milliseconds(3000);
    o.retry.max_attempts = max_attempts;
    o.retry.base_delay = std::chrono::milliseconds(1);
    o.retry.max_delay = std::chrono::milliseconds(5);
    o.page_size = 10;
    o.max_pages_in_flight = 4;
    return o;
}

// An Api on its own io_context; run(api.call(...)) drives one call to its end.
struct Harness {
    boost::asio::io_context io;
    TokenFile token;
    Api api;
    Harness(ApiOptions options, const std::string& token_value = "secret-token-123")
        : token(token_value), api(io.get_executor(), std::move(options), token.source()) {}

    template <class T>
    T run(boost::asio::awaitable<T> task) {
        return cdpsync::testing::run_until_done(io, std::move(task));
    }
};

// A CDP reply body.
inline std::string ok_body(const nlohmann::json& data = nullptr) {
    return nlohmann::json{{"code", 0}, {"msg", "success"}, {"data", data}}.dump();
}
inline std::string fail_body(const std::string& msg, int code = -1) {
    return nlohmann::json{{"code", code}, {"msg", msg}, {"data", nullptr}}.dump();
}

}  // namespace cdpsync::cdp::test
