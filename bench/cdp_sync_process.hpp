// Shared by the benches that run the real cdp-sync binary: fork it with a config, wait,
// and keep its exit code, wall and CPU time, peak RSS and output.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace cdpsync::bench {

// The build directory holding cdp-sync: $CDP_SYNC_BINARY_DIR, else the parent of bench/.
// Resolved once: a rebuild during a long run replaces the bench's own file, and
// /proc/self/exe then names a deleted one.
inline std::string binary_dir() {
    static const std::string dir = [] {
        if (const char* d = std::getenv("CDP_SYNC_BINARY_DIR")) return std::string(d);
        return std::filesystem::canonical("/proc/self/exe").parent_path().parent_path().string();
    }();
    return dir;
}

struct Proc {
    int exit_code = -1;
    double seconds = 0;
    double cpu_seconds = 0;
    // cdp-sync's own peak: VmHWM of /proc/PID/status, sampled every 20 ms (a peak reached in
    // its last 20 ms is missed). wait4's ru_maxrss is no good here: Linux keeps the forked
    // image's high-water mark across exec, so it reports at least the bench's own RSS.
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
    long hwm_kb = 0;
    const std::string status_file = "/proc/" + std::to_string(pid) + "/status";
    while (::wait4(pid, &status, WNOHANG, &ru) == 0) {
        std::ifstream st(status_file);
        bool execed = false;  // before exec, the status is the forked bench's
        for (std::string line; std::getline(st, line);) {
            if (line.rfind("Name:", 0) == 0) execed = line.find("cdp-sync") != std::string::npos;
            if (execed && line.rfind("VmHWM:", 0) == 0) hwm_kb = std::max(hwm_kb, std::atol(line.c_str() + 6));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Proc p;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    p.max_rss_kb = hwm_kb;
    p.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    std::ifstream f(log);
    p.output.assign(std::istreambuf_iterator<char>(f), {});
    return p;
}

}  // namespace cdpsync::bench
