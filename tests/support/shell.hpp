// Small helpers for tests that drive scripts (scripts/pg-cluster.sh, install.sh, pg_ctl);
// every program, a shell included, is started by support/child_process.hpp.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <utility>

#include "support/child_process.hpp"

namespace cdpsync::testing {

// Runs `command` with /bin/sh: its exit code (128 + signal when a signal ended it, -1 when
// it was still running after 10 minutes and killed) and its stdout. What it wrote to stderr
// is passed on to the test's stderr.
inline std::pair<int, std::string> shell(const std::string& command) {
    static int n = 0;
    const auto base = std::filesystem::temp_directory_path() /
                      ("cdp-sync-sh-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    ChildOptions o;
    o.stdout_path = base.string() + ".out";
    o.stderr_path = base.string() + ".err";
    const Finished f = run_to_end("/bin/sh", {"-c", command}, o, std::chrono::minutes(10));
    std::cerr << f.err;
    std::filesystem::remove(o.stdout_path);
    std::filesystem::remove(o.stderr_path);
    return {f.exit_code, f.out};
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
