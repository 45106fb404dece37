// Small helpers for tests that drive scripts (scripts/pg-cluster.sh, install.sh, pg_ctl);
// programs of this build run through support/child_process.hpp.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>

namespace cdpsync::testing {

// Runs `command` with /bin/sh: its exit code (-1 when it did not exit) and its stdout.
inline std::pair<int, std::string> shell(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return {-1, out};
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Runs `command` with /bin/sh and returns its stdout without trailing newlines.
inline std::string sh(const std::string& command) {
    std::string out = shell(command).second;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

// A TCP port nothing listens on right now (the kernel's pick for an ephemeral bind).
inline int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

}  // namespace cdpsync::testing
