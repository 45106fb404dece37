// One way for tests to run a program: start it (posix_spawn, signals unblocked, output to
// files, environment changed as asked), wait for it with a timeout, signal or kill it, read
// what it wrote. The destructor kills and reaps a child still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cdpsync::testing {

// A program this build made: built_binary("cdp-sync"), built_binary("cdp-sync-sim").
std::string built_binary(const std::string& name);

struct ChildOptions {
    std::filesystem::path stdout_path;        // required
    std::filesystem::path stderr_path;        // empty: into stdout_path
    bool append = false;                      // add to the files instead of truncating them
    std::map<std::string, std::string> set_env;
    std::vector<std::string> unset_env;
};

class ChildProcess {
public:
    // Throws std::runtime_error when the program cannot be started.
    ChildProcess(const std::string& program, const std::vector<std::string>& args, ChildOptions options);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig);
    bool running();
    // The exit code once it ended within `timeout` (128 + signal when a signal ended it).
    std::optional<int> wait(std::chrono::milliseconds timeout);
    // Sends `sig`, then waits for the end (SIGKILL after 10 s); the exit code.
    int stop(int sig);

    std::string output() const;  // what it wrote to stdout_path so far
    std::string errors() const;  // what it wrote to stderr_path (== output() when shared)

private:
    ChildOptions options_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

struct Finished {
    int exit_code = -1;  // -1: killed at the timeout
    std::string out;
    std::string err;     // == out when the options share one file
};

// Runs the program to its end (killed after `timeout`).
Finished run_to_end(const std::string& program, const std::vector<std::string>& args, ChildOptions options,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace cdpsync::testing
