#include "support/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace cdpsync::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// This process's environment with the options' changes, as "K=V" strings.
std::vector<std::string> child_environment(const ChildOptions& o) {
    std::map<std::string, std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string kv = *e;
        if (const auto eq = kv.find('='); eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : o.set_env) env[k] = v;
    for (const auto& k : o.unset_env) env.erase(k);
    std::vector<std::string> out;
    for (const auto& [k, v] : env) out.push_back(k + "=" + v);
    return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (auto& s : strings) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

}  // namespace

std::string built_binary(const std::string& name) { return std::string(CDP_SYNC_BINARY_DIR) + "/" + name; }

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& args, ChildOptions options)
    : options_(std::move(options)) {
    if (!std::filesystem::exists(program)) throw std::runtime_error(program + " is missing: build it first");
    const int flags = O_WRONLY | O_CREAT | (options_.append ? O_APPEND : O_TRUNC);
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 1, options_.stdout_path.c_str(), flags, 0644);
    if (options_.stderr_path.empty()) posix_spawn_file_actions_adddup2(&files, 1, 2);
    else posix_spawn_file_actions_addopen(&files, 2, options_.stderr_path.c_str(), flags, 0644);

    // The test may block signals for its own threads: the child starts with none blocked.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<std::string> argv_s{program};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    auto env_s = child_environment(options_);
    auto argv = pointers(argv_s);
    auto envp = pointers(env_s);
    const int rc = posix_spawn(&pid_, program.c_str(), &files, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&files);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("cannot start " + program);
}

ChildProcess::~ChildProcess() {
    if (running()) stop(SIGKILL);
}

void ChildProcess::signal(int sig) {
    if (running()) ::kill(pid_, sig);
}

bool ChildProcess::running() {
    if (status_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
    const auto end = Clock::now() + timeout;
    while (running() && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return running() ? std::nullopt : status_;
}

int ChildProcess::stop(int sig) {
    signal(sig);
    if (auto code = wait(std::chrono::seconds(10))) return *code;
    signal(SIGKILL);
    return wait(std::chrono::seconds(10)).value_or(-1);
}

std::string ChildProcess::output() const { return slurp(options_.stdout_path); }

std::string ChildProcess::errors() const {
    return slurp(options_.stderr_path.empty() ? options_.stdout_path : options_.stderr_path);
}

Finished run_to_end(const std::string& program, const std::vector<std::string>& args, ChildOptions options,
                    std::chrono::milliseconds timeout) {
    ChildProcess child(program, args, std::move(options));
    Finished f;
    f.exit_code = child.wait(timeout).value_or(-1);
    if (f.exit_code == -1) child.stop(SIGKILL);
    f.out = child.output();
    f.err = child.errors();
    return f;
}

}  // namespace cdpsync::testing
