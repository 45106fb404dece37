// Shared by the benches that run the real cdp-sync binary: fork it with a config, wait,
// and keep its exit code, wall and CPU time, peak RSS and output.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace cdpsync::bench {

// The build directory holding cdp-sync: $CDP_SYNC_BINARY_DIR, else the parent of bench/.
inline std::string binary_dir() {
    if (const char* d = std::getenv("CDP_SYNC_BINARY_DIR")) return d;
    return std::filesystem::canonical("/proc/self/exe").parent_path().parent_path().string();
}

struct Proc {
    int exit_code = -1;
    double seconds = 0;
    double cpu_seconds = 0;
    long max_rss_kb = 0;
    std::string output;  // stdout and stderr, as written to the log file
};

inline Proc run_cdp_sync(const std::filesystem::path& config, const std::vector<std::string>& args,
                         const std::filesystem::path& log) {
    const std::string bin = binary_dir() + "/cdp-sync";
    const auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        std::vector<const char*> argv{bin.c_str(), "--config", config.c_str()};
        for (const auto& a : args) argv.push_back(a.c_str());
        argv.push_back(nullptr);
        ::execv(bin.c_str(), const_cast<char* const*>(argv.data()));
        ::_exit(127);
    }
    int status = 0;
    struct rusage ru {};
    ::wait4(pid, &status, 0, &ru);
    Proc p;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    p.max_rss_kb = ru.ru_maxrss;
    p.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    std::ifstream f(log);
    p.output.assign(std::istreambuf_iterator<char>(f), {});
    return p;
}

}  // namespace cdpsync::bench
