#include "config/logging.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "test_util.hpp"

namespace cdpsync::logging {
namespace {

using config::test::LogCapture;
using config::test::ScopedEnv;
using config::test::TempDir;

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

class Logging : public ::testing::Test {
protected:
    void TearDown() override { init_stderr("warn"); }
};

TEST_F(Logging, TextFormat) {
    LogCapture capture("info");
    logger("http")->info("GET {} -> {}", "/openapi/x", 200);
    const auto out = lines(capture.text());
    ASSERT_EQ(out.size(), 1u) << capture.text();
    EXPECT_TRUE(std::regex_match(out[0], std::regex(R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[info\] \[http\] GET /openapi/x -> 200)")))
        << out[0];
}

TEST_F(Logging, JsonLinesParseAndEscape) {
    LogCapture capture("debug", config::LogFormat::json);
    const std::string tricky = "say \"hi\"\nnext line\\ tab\t ctl\x01 中文";
    logger("json-test")->warn("{}", tricky);
    logger("json-test")->debug("plain");
    logger("json-test")->info("bad utf8 \xff\xc0\xaf end");
    logger("json-test")->trace("below the level");

    const auto out = lines(capture.text());
    ASSERT_EQ(out.size(), 3u) << capture.text();
    const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
    std::vector<nlohmann::json> parsed;
    for (const auto& l : out) {
        SCOPED_TRACE(l);
        nlohmann::json j;
        ASSERT_NO_THROW(j = nlohmann::json::parse(l));
        ASSERT_TRUE(j.is_object());
        EXPECT_EQ(j.size(), 4u);
        EXPECT_TRUE(std::regex_match(j.at("ts").get<std::string>(), iso)) << j.at("ts");
        EXPECT_EQ(j.at("logger"), "json-test");
        parsed.push_back(j);
    }
    EXPECT_EQ(parsed[0].at("level"), "warning");
    EXPECT_EQ(parsed[0].at("msg"), tricky);
    EXPECT_EQ(parsed[1].at("level"), "debug");
    EXPECT_EQ(parsed[1].at("msg"), "plain");
    EXPECT_EQ(parsed[2].at("msg"), "bad utf8 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
    EXPECT_NE(out[0].find(R"(say \"hi\"\nnext line\\ tab\t ctl\u0001)"), std::string::npos) << out[0];
}

TEST_F(Logging, JsonTimestampIsUtc) {
    auto f = make_formatter(config::LogFormat::json);
    spdlog::details::log_msg msg(spdlog::log_clock::time_point(std::chrono::milliseconds(1795593600123)),
                                 spdlog::source_loc{}, "t", spdlog::level::info, "m");
    spdlog::memory_buf_t buf;
    f->format(msg, buf);
    const auto j = nlohmann::json::parse(std::string(buf.data(), buf.size()));
    EXPECT_EQ(j.at("ts"), "2026-11-25T08:00:00.123Z");
}

TEST_F(Logging, RotatingFileInNewDirectory) {
    TempDir dir;
    config::LoggingConfig cfg;
    cfg.file = (dir / "sub/dir/cdp-sync.log").string();
    cfg.level = "info";
    cfg.max_size_mb = 1;
    cfg.max_files = 2;
    init(cfg, false);
    auto l = logger("rotate-test");
    l->info("first line");
    l->flush();
    ASSERT_TRUE(std::filesystem::exists(cfg.file));
    EXPECT_NE(config::test::read_file(cfg.file).find("[info] [rotate-test] first line"), std::string::npos);

    const std::string chunk(1000, 'x');
    for (int i = 0; i < 1200; ++i) l->info("{}", chunk);
    l->flush();
    EXPECT_TRUE(std::filesystem::exists(dir / "sub/dir/cdp-sync.1.log"));
    EXPECT_LE(std::filesystem::file_size(cfg.file), 1024u * 1024u);
}

TEST_F(Logging, JsonFileFormat) {
    TempDir dir;
    config::LoggingConfig cfg;
    cfg.file = (dir / "cdp.log").string();
    cfg.format = config::LogFormat::json;
    init(cfg, false);
    logger("jf")->error("boom");
    logger("jf")->flush();
    const auto j = nlohmann::json::parse(config::test::read_file(cfg.file));
    EXPECT_EQ(j.at("msg"), "boom");
    EXPECT_EQ(j.at("level"), "error");
}

TEST_F(Logging, UnopenableFileNamesThePath) {
    TempDir dir;
    config::test::write_file(dir / "plain", "x");
    config::LoggingConfig cfg;
    cfg.file = (dir / "plain/sub/cdp.log").string();  // a parent is a regular file
    try {
        init(cfg, false);
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find((dir / "plain/sub").string()), std::string::npos) << e.what();
    }
    cfg.file = dir.path().string();  // a directory
    try {
        init(cfg, false);
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(dir.path().string()), std::string::npos) << e.what();
    }
}

TEST_F(Logging, ReinitUpdatesExistingLoggers) {
    std::ostringstream first, second;
    init_sinks({std::make_shared<spdlog::sinks::ostream_sink_mt>(first)}, "info");
    auto l = logger("reinit-test");
    EXPECT_EQ(l->level(), spdlog::level::info);
    l->info("one");

    init_sinks({std::make_shared<spdlog::sinks::ostream_sink_mt>(second)}, "error");
    EXPECT_EQ(logger("reinit-test"), l);  // the same logger object
    EXPECT_EQ(l->level(), spdlog::level::err);
    l->info("two");  // below the new level
    l->error("three");
    init_stderr("warn");  // before the streams go away

    EXPECT_NE(first.str().find("one"), std::string::npos);
    EXPECT_EQ(first.str().find("three"), std::string::npos);
    EXPECT_EQ(second.str().find("two"), std::string::npos);
    EXPECT_NE(second.str().find("three"), std::string::npos);
}

TEST_F(Logging, ReinitFromConfigChangesLevel) {
    TempDir dir;
    config::LoggingConfig cfg;
    cfg.file = (dir / "a.log").string();
    cfg.level = "debug";
    init(cfg, false);
    auto l = logger("sighup-test");
    EXPECT_EQ(l->level(), spdlog::level::debug);
    cfg.level = "warn";
    cfg.file = (dir / "b.log").string();
    init(cfg, false);
    EXPECT_EQ(l->level(), spdlog::level::warn);
    l->warn("after reload");
    l->flush();
    EXPECT_NE(config::test::read_file(dir / "b.log").find("after reload"), std::string::npos);
    EXPECT_EQ(config::test::read_file(dir / "a.log").find("after reload"), std::string::npos);
}

TEST_F(Logging, LoggerIsRegisteredAndDefault) {
    init_stderr("info");
    auto l = logger("registered-test");
    EXPECT_EQ(spdlog::get("registered-test"), l);
    EXPECT_EQ(logger("registered-test"), l);
    EXPECT_EQ(spdlog::default_logger()->name(), "cdp-sync");
}

// Points file descriptor 2 at a file for the life of the object, as systemd points a
// service's stderr at the journal's socket.
class StderrToFile {
public:
    explicit StderrToFile(std::filesystem::path path) : path_(std::move(path)) {
        std::fflush(stderr);
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        saved_ = ::dup(STDERR_FILENO);
        if (fd_ < 0 || saved_ < 0 || ::dup2(fd_, STDERR_FILENO) < 0) throw std::runtime_error("cannot redirect stderr");
    }
    ~StderrToFile() {
        std::fflush(stderr);
        ::dup2(saved_, STDERR_FILENO);
        ::close(saved_);
        ::close(fd_);
    }
    StderrToFile(const StderrToFile&) = delete;
    StderrToFile& operator=(const StderrToFile&) = delete;

    // "DEVICE:INODE" of the file, as systemd writes it into $JOURNAL_STREAM.
    std::string device_inode() const {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) throw std::runtime_error("fstat failed");
        return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    }
    std::string text() const {
        std::fflush(stderr);
        return config::test::read_file(path_);
    }

private:
    std::filesystem::path path_;
    int fd_ = -1;
    int saved_ = -1;
};

config::LoggingConfig stderr_only(const std::string& level, config::LogFormat format = config::LogFormat::text) {
    config::LoggingConfig cfg;
    cfg.file = "";
    cfg.level = level;
    cfg.format = format;
    return cfg;
}

TEST_F(Logging, JournalStderrLinesCarryTheirPriorityAndNoTimestamp) {
    TempDir dir;
    StderrToFile err(dir / "stderr");
    ScopedEnv journal("JOURNAL_STREAM", err.device_inode().c_str());
    ASSERT_TRUE(stderr_is_journal());
    init(stderr_only("trace"), true);
    auto l = logger("journal-test");
    l->critical("c");
    l->error("e");
    l->warn("w");
    l->info("i");
    l->debug("d");
    l->trace("t");
    l->error("first line\nsecond line");
    l->flush();
    init_stderr("warn");
    l->error("after init_stderr");
    l->flush();

    const std::vector<std::string> expected = {
        "<2>[critical] [journal-test] c", "<3>[error] [journal-test] e",  "<4>[warning] [journal-test] w",
        "<6>[info] [journal-test] i",     "<7>[debug] [journal-test] d",  "<7>[trace] [journal-test] t",
        "<3>[error] [journal-test] first line", "<3>second line",  "<3>[error] [journal-test] after init_stderr",
    };
    EXPECT_EQ(lines(err.text()), expected) << err.text();
}

TEST_F(Logging, JournalJsonLinesKeepTheirObject) {
    TempDir dir;
    StderrToFile err(dir / "stderr");
    ScopedEnv journal("JOURNAL_STREAM", err.device_inode().c_str());
    init(stderr_only("info", config::LogFormat::json), true);
    logger("journal-json")->warn("two\nlines");
    logger("journal-json")->flush();
    const auto out = lines(err.text());
    ASSERT_EQ(out.size(), 1u) << err.text();  // the newline is escaped inside the JSON string
    ASSERT_EQ(out[0].rfind("<4>{", 0), 0u) << out[0];
    const auto j = nlohmann::json::parse(out[0].substr(3));
    EXPECT_EQ(j.at("msg"), "two\nlines");
    EXPECT_EQ(j.at("level"), "warning");
}

TEST_F(Logging, LogFileKeepsItsFormatWhenStderrIsTheJournal) {
    TempDir dir;
    StderrToFile err(dir / "stderr");
    ScopedEnv journal("JOURNAL_STREAM", err.device_inode().c_str());
    config::LoggingConfig cfg = stderr_only("info");
    cfg.file = (dir / "cdp-sync.log").string();
    init(cfg, true);
    logger("journal-file")->error("to both");
    logger("journal-file")->flush();
    EXPECT_EQ(lines(err.text()), std::vector<std::string>{"<3>[error] [journal-file] to both"});
    const auto file = lines(config::test::read_file(cfg.file));
    ASSERT_EQ(file.size(), 1u);
    EXPECT_TRUE(std::regex_match(file[0], std::regex(R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[error\] \[journal-file\] to both)")))
        << file[0];
}

TEST_F(Logging, StderrNotTheJournalKeepsTimestampsAndNoPrefix) {
    TempDir dir;
    StderrToFile err(dir / "stderr");
    StderrToFile other_file(dir / "other");  // now fd 2 is "other"; the first file is elsewhere
    const std::string stale = err.device_inode();  // a JOURNAL_STREAM inherited from a parent
    for (const char* value : {static_cast<const char*>(nullptr), "", "garbage", "1:2:3", stale.c_str()}) {
        SCOPED_TRACE(value ? value : "(unset)");
        ScopedEnv journal("JOURNAL_STREAM", value);
        EXPECT_FALSE(stderr_is_journal());
    }
    ScopedEnv journal("JOURNAL_STREAM", stale.c_str());
    init(stderr_only("info"), true);
    logger("not-journal")->error("plain");
    logger("not-journal")->flush();
    const auto out = lines(other_file.text());
    ASSERT_EQ(out.size(), 1u) << other_file.text();
    EXPECT_TRUE(std::regex_match(out[0], std::regex(R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[error\] \[not-journal\] plain)")))
        << out[0];
}

TEST(LoggingLevel, ParseLevel) {
    EXPECT_EQ(parse_level("trace"), spdlog::level::trace);
    EXPECT_EQ(parse_level("debug"), spdlog::level::debug);
    EXPECT_EQ(parse_level("info"), spdlog::level::info);
    EXPECT_EQ(parse_level("warn"), spdlog::level::warn);
    EXPECT_EQ(parse_level("warning"), spdlog::level::warn);
    EXPECT_EQ(parse_level("error"), spdlog::level::err);
    EXPECT_EQ(parse_level("critical"), spdlog::level::critical);
    EXPECT_EQ(parse_level("off"), spdlog::level::off);
    EXPECT_EQ(parse_level("INFO"), spdlog::level::info);
    EXPECT_THROW(parse_level("verbose"), std::invalid_argument);
    EXPECT_THROW(parse_level(""), std::invalid_argument);
}

}  // namespace
}  // namespace cdpsync::logging
