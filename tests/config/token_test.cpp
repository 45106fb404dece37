#include "config/token.hpp"

#include <chrono>

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace cdpsync::config {
namespace {

using test::LogCapture;
using test::ScopedEnv;
using test::TempDir;

CdpConfig from_env(const std::string& var) {
    CdpConfig c;
    c.token_env = var;
    return c;
}
CdpConfig from_file(const std::string& path) {
    CdpConfig c;
    c.token_file = path;
    return c;
}
CdpConfig from_command(std::vector<std::string> argv) {
    CdpConfig c;
    c.token_command = std::move(argv);
    return c;
}

std::string token_error(const TokenSource& src) {
    try {
        src.read();
    } catch (const TokenError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no TokenError from " << src.describe();
    return {};
}

TEST(TokenSource, FromEnvironment) {
    ScopedEnv env("CDP_SYNC_TEST_TOKEN", "  tok-env-123\n");
    TokenSource src(from_env("CDP_SYNC_TEST_TOKEN"));
    EXPECT_TRUE(src.configured());
    EXPECT_EQ(src.describe(), "environment variable CDP_SYNC_TEST_TOKEN");
    EXPECT_EQ(src.read().reveal(), "tok-env-123");
}

TEST(TokenSource, EnvironmentUnsetOrEmptyNamesTheVariable) {
    {
        ScopedEnv env("CDP_SYNC_TEST_TOKEN", nullptr);
        const auto msg = token_error(TokenSource(from_env("CDP_SYNC_TEST_TOKEN")));
        EXPECT_NE(msg.find("CDP_SYNC_TEST_TOKEN"), std::string::npos) << msg;
        EXPECT_NE(msg.find("not set"), std::string::npos) << msg;
    }
    {
        ScopedEnv env("CDP_SYNC_TEST_TOKEN", " \n");
        const auto msg = token_error(TokenSource(from_env("CDP_SYNC_TEST_TOKEN")));
        EXPECT_NE(msg.find("CDP_SYNC_TEST_TOKEN is empty"), std::string::npos) << msg;
    }
}

TEST(TokenSource, FromFileTrimmed) {
    TempDir dir;
    test::write_file(dir / "token", "\n tok-file-456 \r\n\n");
    TokenSource src(from_file((dir / "token").string()));
    EXPECT_EQ(src.read().reveal(), "tok-file-456");
    EXPECT_EQ(src.describe(), "file " + (dir / "token").string());

    // Re-read after a rotation sees the new value.
    test::write_file(dir / "token", "tok-file-789");
    EXPECT_EQ(src.read().reveal(), "tok-file-789");
}

TEST(TokenSource, FileMissingOrEmptyNamesThePath) {
    TempDir dir;
    const auto missing = (dir / "nope").string();
    auto msg = token_error(TokenSource(from_file(missing)));
    EXPECT_NE(msg.find(missing), std::string::npos) << msg;

    test::write_file(dir / "empty", " \n\t\n");
    msg = token_error(TokenSource(from_file((dir / "empty").string())));
    EXPECT_NE(msg.find((dir / "empty").string() + " is empty"), std::string::npos) << msg;

    msg = token_error(TokenSource(from_file(dir.path().string())));  // a directory
    EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
}

TEST(TokenSource, FromCommandStdout) {
    TokenSource src(from_command({"/bin/sh", "-c", "printf '  tok-cmd-789\\n\\n'"}));
    EXPECT_EQ(src.read().reveal(), "tok-cmd-789");
    EXPECT_EQ(src.describe(), "command /bin/sh");

    // Found on PATH, no shell involved: the argument reaches the program verbatim.
    TokenSource echo(from_command({"echo", "tok $HOME; `x`"}));
    EXPECT_EQ(echo.read().reveal(), "tok $HOME; `x`");
}

TEST(TokenSource, CommandFailureNamesProgramAndStatusButNotOutput) {
    const auto msg = token_error(TokenSource(from_command({"/bin/sh", "-c", "echo tok-leaked-123; exit 3"})));
    EXPECT_NE(msg.find("/bin/sh"), std::string::npos) << msg;
    EXPECT_NE(msg.find("exit status 3"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("tok-leaked-123"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("echo"), std::string::npos) << msg;  // arguments are not named either

    const auto killed = token_error(TokenSource(from_command({"/bin/sh", "-c", "kill -9 $$"})));
    EXPECT_NE(killed.find("signal 9"), std::string::npos) << killed;

    const auto empty = token_error(TokenSource(from_command({"/bin/true"})));
    EXPECT_NE(empty.find("/bin/true"), std::string::npos) << empty;
    EXPECT_NE(empty.find("no token"), std::string::npos) << empty;

    const auto absent = token_error(TokenSource(from_command({"/nonexistent/get-token", "--x"})));
    EXPECT_NE(absent.find("/nonexistent/get-token"), std::string::npos) << absent;
}

TEST(TokenSource, CommandTimeoutKillsIt) {
    TokenSource src(from_command({"/bin/sh", "-c", "echo partial; sleep 30; echo tok"}));
    src.with_command_timeout(std::chrono::milliseconds(200));
    const auto start = std::chrono::steady_clock::now();
    const auto msg = token_error(src);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_NE(msg.find("timed out"), std::string::npos) << msg;
    EXPECT_LT(took, std::chrono::seconds(10));  // the sleeping child was killed, not waited for
}

TEST(TokenSource, CredentialsDirectory) {
    TempDir dir;
    test::write_file(dir / "token", "tok-cred-321\n");
    ScopedEnv env("CREDENTIALS_DIRECTORY", dir.path().c_str());
    TokenSource src{CdpConfig{}};
    EXPECT_TRUE(src.configured());
    EXPECT_NE(src.describe().find("credential"), std::string::npos);
    EXPECT_EQ(src.read().reveal(), "tok-cred-321");

    std::filesystem::remove(dir / "token");
    EXPECT_FALSE(src.configured());
    const auto msg = token_error(src);
    EXPECT_NE(msg.find((dir / "token").string()), std::string::npos) << msg;
}

TEST(TokenSource, NoSourceAtAllFailsClearly) {
    ScopedEnv env("CREDENTIALS_DIRECTORY", nullptr);
    TokenSource src{CdpConfig{}};
    EXPECT_FALSE(src.configured());
    const auto msg = token_error(src);
    EXPECT_NE(msg.find("CREDENTIALS_DIRECTORY"), std::string::npos) << msg;
    EXPECT_NE(msg.find("token_env"), std::string::npos) << msg;
}

TEST(TokenSource, TokenNeverReachesErrorsOrLogs) {
    const std::string secret = "tok-SECRET-5a1f";
    LogCapture capture("trace");
    TempDir dir;

    // Successful reads log at debug level: the source, not the value.
    ScopedEnv env("CDP_SYNC_TEST_TOKEN", secret.c_str());
    EXPECT_EQ(TokenSource(from_env("CDP_SYNC_TEST_TOKEN")).read().reveal(), secret);
    test::write_file(dir / "token", secret);
    EXPECT_EQ(TokenSource(from_file((dir / "token").string())).read().reveal(), secret);
    EXPECT_EQ(TokenSource(from_command({"printf", "%s", secret})).read().reveal(), secret);

    // Failures that had the token in hand.
    std::vector<std::string> messages;
    messages.push_back(token_error(TokenSource(from_command({"/bin/sh", "-c", "echo " + secret + "; exit 1"}))));
    messages.push_back(token_error(TokenSource(from_command({"/bin/sh", "-c", "printf %s " + secret + "; kill -9 $$"}))));
    TokenSource slow(from_command({"/bin/sh", "-c", "echo " + secret + "; sleep 30"}));
    slow.with_command_timeout(std::chrono::milliseconds(100));
    messages.push_back(token_error(slow));
    test::write_file(dir / "big", secret + std::string(70000, 'x'));
    messages.push_back(token_error(TokenSource(from_file((dir / "big").string()))));

    for (const auto& m : messages) {
        EXPECT_FALSE(m.empty());
        EXPECT_EQ(m.find(secret), std::string::npos) << m;
    }
    const std::string log = capture.text();
    EXPECT_NE(log.find("cannot read the CDP token"), std::string::npos) << log;  // errors were logged
    EXPECT_NE(log.find("environment variable CDP_SYNC_TEST_TOKEN"), std::string::npos) << log;
    EXPECT_EQ(log.find(secret), std::string::npos) << log;
}

}  // namespace
}  // namespace cdpsync::config
