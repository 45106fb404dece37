#include "config/token.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/logging.hpp"
#include "config/text.hpp"

extern char** environ;

namespace cdpsync::config {

namespace {

constexpr size_t max_token_bytes = 64 * 1024;

Secret read_token_file(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw TokenError("cannot read " + what + " " + path + ": " + std::strerror(errno));
    std::string data(max_token_bytes + 1, '\0');
    in.read(data.data(), static_cast<std::streamsize>(data.size()));
    if (in.bad()) throw TokenError("cannot read " + what + " " + path);
    data.resize(static_cast<size_t>(in.gcount()));
    if (data.size() > max_token_bytes) throw TokenError(what + " " + path + " is too large to be a token");
    std::string token = text::trim(data);
    if (token.empty()) throw TokenError(what + " " + path + " is empty");
    return Secret(std::move(token));
}

// Closes a file descriptor on scope exit.
struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// Starts argv without a shell, its stdin from /dev/null and its stdout to `out_fd`, in a
// process group of its own (so a timeout also kills what it started).
pid_t spawn_token_command(const std::vector<std::string>& argv, int out_fd, const std::string& prog) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    posix_spawnattr_setpgroup(&attr, 0);
    // The daemon may block or ignore signals; the helper starts with the defaults.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);

    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw TokenError("cannot run " + prog + ": " + std::strerror(rc));
    return pid;
}

enum class OutputEnd { closed, timed_out, too_large };

// Reads `fd` into `out` until it closes (or fails), the deadline, or more than max_token_bytes.
OutputEnd read_output(int fd, std::chrono::steady_clock::time_point deadline, std::string& out) {
    char buf[4096];
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return OutputEnd::timed_out;
        pollfd p{fd, POLLIN, 0};
        const int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) continue;  // the deadline check above ends the loop
        if (n < 0) return OutputEnd::closed;
        const ssize_t got = ::read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return OutputEnd::closed;
        out.append(buf, static_cast<size_t>(got));
        if (out.size() > max_token_bytes) return OutputEnd::too_large;
    }
}

// Runs argv (see spawn_token_command) and returns its stdout, trimmed.
Secret run_token_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    const std::string prog = "token_command '" + argv[0] + "'";
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) throw TokenError(prog + ": pipe: " + std::strerror(errno));
    Fd rd{pipefd[0]};
    Fd wr{pipefd[1]};
    const pid_t pid = spawn_token_command(argv, wr.fd, prog);
    ::close(wr.fd);
    wr.fd = -1;

    std::string out;
    const OutputEnd end = read_output(rd.fd, std::chrono::steady_clock::now() + timeout, out);
    if (end != OutputEnd::closed) ::kill(-pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    // The output may hold a partial token: it is wiped and never quoted.
    std::string token = text::trim(out);
    std::fill(out.begin(), out.end(), '\0');
    if (end == OutputEnd::timed_out)
        throw TokenError(prog + " timed out after " + std::to_string(timeout.count()) + " ms");
    if (end == OutputEnd::too_large)
        throw TokenError(prog + " wrote more than " + std::to_string(max_token_bytes) + " bytes");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw TokenError(prog + " failed: " + describe_status(status));
    if (token.empty()) throw TokenError(prog + " printed no token (exit status 0)");
    return Secret(std::move(token));
}

}  // namespace

TokenSource::TokenSource(const CdpConfig& cdp)
    : env_(cdp.token_env), file_(cdp.token_file), command_(cdp.token_command) {}

TokenSource& TokenSource::with_command_timeout(std::chrono::milliseconds timeout) {
    command_timeout_ = timeout;
    return *this;
}

Secret TokenSource::read() const {
    auto log = logging::logger("config");
    try {
        Secret s = read_now();
        log->debug("read the CDP token from {}", describe());
        return s;
    } catch (const TokenError& e) {
        log->debug("cannot read the CDP token: {}", e.what());
        throw;
    }
}

Secret TokenSource::read_now() const {
    if (!env_.empty()) {
        const char* v = std::getenv(env_.c_str());
        if (v == nullptr) throw TokenError("environment variable " + env_ + " is not set");
        std::string token = text::trim(v);
        if (token.empty()) throw TokenError("environment variable " + env_ + " is empty");
        return Secret(std::move(token));
    }
    if (!file_.empty()) return read_token_file(file_, "token file");
    if (!command_.empty()) return run_token_command(command_, command_timeout_);
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0')
        throw TokenError(
            "no token source: set cdp.token_env, cdp.token_file or cdp.token_command, or run under systemd "
            "with LoadCredential=token (CREDENTIALS_DIRECTORY is not set)");
    return read_token_file(std::string(dir) + "/token", "credential file");
}

std::string TokenSource::describe() const {
    if (!env_.empty()) return "environment variable " + env_;
    if (!file_.empty()) return "file " + file_;
    if (!command_.empty()) return "command " + command_[0];
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir != nullptr && *dir != '\0') return "systemd credential " + std::string(dir) + "/token";
    return "no token source";
}

bool TokenSource::configured() const {
    if (!env_.empty() || !file_.empty() || !command_.empty()) return true;
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    return dir != nullptr && *dir != '\0' && ::access((std::string(dir) + "/token").c_str(), F_OK) == 0;
}

}  // namespace cdpsync::config
