// A datagram socket standing in for systemd's notify socket (NOTIFY_SOCKET).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace cdpsync::testing {

using Clock = std::chrono::steady_clock;

class NotifySocket {
public:
    NotifySocket() {
        path_ = std::filesystem::temp_directory_path() / ("cdp-sync-notify-" + std::to_string(::getpid()) + "-" +
                                                          std::to_string(++n_));
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
        ::unlink(path_.c_str());
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        timeval tv{0, 200'000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    std::string path() const { return path_.string(); }
    // Every message received for `d`, with the time it arrived.
    std::vector<std::pair<Clock::time_point, std::string>> receive_for(std::chrono::milliseconds d) {
        std::vector<std::pair<Clock::time_point, std::string>> out;
        const auto end = Clock::now() + d;
        while (Clock::now() < end) {
            char buf[4096];
            auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n > 0) out.emplace_back(Clock::now(), std::string(buf, static_cast<size_t>(n)));
        }
        return out;
    }
    // Every message received until `until` holds or the timeout passes, joined by '\n'.
    std::string receive_until(const std::string& until, std::chrono::milliseconds timeout) {
        const auto end = Clock::now() + timeout;
        while (Clock::now() < end && all_.find(until) == std::string::npos) {
            char buf[4096];
            auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n > 0) all_ += std::string(buf, static_cast<size_t>(n)) + "\n";
        }
        return all_;
    }

private:
    static inline int n_ = 0;
    std::filesystem::path path_;
    int fd_ = -1;
    std::string all_;
};

}  // namespace cdpsync::testing
