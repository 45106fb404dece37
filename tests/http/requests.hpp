// Requests for the http tests, built by functions, never as braced temporaries inside
// co_await: GCC 12 destroys a braced aggregate temporary argument of a co_await expression
// twice.
#pragma once

#include <string>
#include <utility>

#include "http/client.hpp"

namespace cdpsync::http::test {

inline Request get(std::string path) {
    Request r;
    r.path = std::move(path);
    return r;
}

inline Request post(std::string path, std::string body) {
    Request r;
    r.method = Method::post;
    r.path = std::move(path);
    r.body = std::move(body);
    return r;
}

}  // namespace cdpsync::http::test
