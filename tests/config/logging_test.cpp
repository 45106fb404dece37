#include "config/logging.hpp"

#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "test_util.hpp"

namespace cdpsync::logging {
namespace {

using config::test::LogCapture;
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
