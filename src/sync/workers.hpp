// A fixed number of coroutines working through shared work on the caller's executor.
#pragma once

#include <utility>  // before awaitable.hpp (GCC 12)

#include <functional>

#include <boost/asio/awaitable.hpp>

namespace cdpsync::sync {

namespace net = boost::asio;

// Runs `width` coroutines made by `worker()` at once and returns when every one has ended.
// The first exception calls `on_first_error` at once (so the others can wind down at their
// next safe point) and is rethrown after all have ended.
net::awaitable<void> run_workers(int width, const std::function<net::awaitable<void>()>& worker,
                                 const std::function<void()>& on_first_error);

}  // namespace cdpsync::sync
