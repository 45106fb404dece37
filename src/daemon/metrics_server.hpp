// GET /metrics over plain HTTP on the daemon's own event loop (metrics.listen). One short
// coroutine per connection, each read and write with a timeout; any other path is 404.
// Rendering must be cheap and non-blocking: it reads figures kept in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <spdlog/logger.h>

namespace cdpsync::daemon {

class MetricsServer {
public:
    using Render = std::function<std::string()>;
    // Listens on `listen` ("HOST:PORT", an IPv6 host in brackets); throws std::runtime_error
    // when the address is malformed or taken.
    MetricsServer(boost::asio::any_io_executor executor, const std::string& listen, Render render,
                  std::shared_ptr<spdlog::logger> log);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    uint16_t port() const;
    // Stops accepting; connections being answered finish within their timeout.
    void stop();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace cdpsync::daemon
