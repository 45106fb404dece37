// `cdp-sync api ...` as an operator runs it: the built binary in a subprocess, against an
// in-process simulator, with a temporary config file and the token in an environment variable.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/server.hpp"
#include "support/child_process.hpp"

namespace cdpsync::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kTokenVar = "CDP_SYNC_CLI_TEST_TOKEN";

struct CliRun {
    int exit_code = -1;
    std::string out;
    std::string err;
};

class Cli : public ::testing::Test {
protected:
    Cli() : server(sim_options()) {
        std::string tmpl = (fs::temp_directory_path() / "cdp-cli-test-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        server.start();
        config = write_config(server.base_url());
        env[kTokenVar] = "sim-token";
    }
    ~Cli() override {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }

    static sim::ServerOptions sim_options() {
        sim::ServerOptions o;
        o.request_capture = 50;
        return o;
    }

    fs::path write_config(const std::string& base_url, const std::string& name = "config.yaml") {
        const fs::path p = dir / name;
        std::ofstream(p) << "cdp:\n"
                            "  base_url: " << base_url << "\n"
                            "  token_env: " << kTokenVar << "\n"
                            "  rate_limit_qps: 1000\n"
                            "  page_size: 3\n"
                            "  timeout_ms: 2000\n"
                            "  retry: {max_attempts: 2, base_delay_ms: 1, max_delay_ms: 5}\n"
                            "database:\n"
                            "  dsn: \"host=/nonexistent dbname=unused\"\n"
                            "  desired_memberships: \"SELECT 1::bigint, 'x'::text\"\n"
                            "logging:\n"
                            "  file: \"\"\n";
        return p;
    }

    // Runs cdp-sync with the given arguments (no --config added) and the fixture's env.
    CliRun run_raw(const std::vector<std::string>& args) {
        testing::ChildOptions o;
        o.stdout_path = dir / "stdout";
        o.stderr_path = dir / "stderr";
        o.set_env = env;
        o.unset_env = unset_env;
        if (!env.count("CDP_SYNC_CONFIG")) o.unset_env.push_back("CDP_SYNC_CONFIG");  // only the test's own
        const auto f = testing::run_to_end(testing::built_binary("cdp-sync"), args, o);
        return CliRun{f.exit_code, f.out, f.err};
    }

    CliRun run(std::vector<std::string> args) {
        args.insert(args.begin(), {"--config", config.string(), "api"});
        return run_raw(args);
    }

    // Runs a command expected to succeed and returns its JSON output.
    json ok(std::vector<std::string> args) {
        CliRun r = run(args);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.err, "");
        try {
            return json::parse(r.out);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "stdout is not JSON: " << r.out;
            return nullptr;
        }
    }

    static void expect_one_line_failure(const CliRun& r, int code = 1) {
        EXPECT_EQ(r.exit_code, code) << r.out << r.err;
        ASSERT_FALSE(r.err.empty());
        EXPECT_EQ(r.err.back(), '\n');
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
    }

    fs::path dir;
    sim::Server server;
    fs::path config;
    std::map<std::string, std::string> env;
    std::vector<std::string> unset_env;
};

TEST_F(Cli, HelpAtEveryLevelPrintsUsageAndExitsZero) {
    const std::vector<std::vector<std::string>> levels = {
        {"--help"},
        {"api", "--help"},
        {"api", "groups", "--help"},
        {"api", "folders", "--help"},
        {"api", "members", "--help"},
        {"api", "customer", "--help"},
        {"api", "groups", "list", "--help"},
        {"api", "groups", "create", "--help"},
        {"api", "groups", "update", "--help"},
        {"api", "groups", "delete", "--help"},
        {"api", "folders", "tree", "--help"},
        {"api", "folders", "add", "--help"},
        {"api", "folders", "update", "--help"},
        {"api", "folders", "delete", "--help"},
        {"api", "members", "list", "--help"},
        {"api", "members", "add", "--help"},
        {"api", "members", "remove", "--help"},
        {"api", "members", "set", "--help"},
        {"api", "customer", "groups", "--help"},
    };
    for (const auto& args : levels) {
        CliRun r = run_raw(args);  // no config needed for help
        const std::string what = args.size() > 1 ? args[args.size() - 2] : args[0];
        EXPECT_EQ(r.exit_code, 0) << what << ": " << r.err;
        EXPECT_EQ(r.out.rfind("Usage:", 0), 0u) << what << ": " << r.out;
        EXPECT_EQ(r.err, "") << what;
    }
    EXPECT_NE(run_raw({"api", "groups", "create", "--help"}).out.find("--name N"), std::string::npos);
    EXPECT_NE(run_raw({"api", "customer", "groups", "--help"}).out.find("static|smart"), std::string::npos);
}

TEST_F(Cli, VersionAndUnknownCommands) {
    CliRun v = run_raw({"--version"});
    EXPECT_EQ(v.exit_code, 0);
    EXPECT_EQ(v.out.rfind("cdp-sync ", 0), 0u);
    expect_one_line_failure(run_raw({"frobnicate"}), 2);
    expect_one_line_failure(run_raw({"--bogus"}), 2);
    expect_one_line_failure(run_raw({"--config"}), 2);
    CliRun none = run_raw({});
    EXPECT_EQ(none.exit_code, 2);
    EXPECT_NE(none.err.find("Usage:"), std::string::npos);
    EXPECT_EQ(none.out, "");
}

TEST_F(Cli, UsageErrorsExitTwoWithOneLine) {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"groups", "create"},                        // --name missing
             {"groups", "delete", "abc"},                 // not an id
             {"groups", "delete"},                        // id missing
             {"groups", "delete", "1", "2"},              // one too many
             {"groups", "list", "--bogus"},
             {"groups", "list", "--page", "0"},
             {"groups", "list", "--folder"},              // value missing
             {"groups", "frob"},
             {"nouns", "list"},
             {"members", "add", "1"},                     // needs a group
             {"customer", "groups", "1", "--type", "dumb"},
         }) {
        CliRun r = run(args);
        SCOPED_TRACE(args[0] + " " + args[1]);
        expect_one_line_failure(r, 2);
        EXPECT_EQ(r.out, "");
    }
    EXPECT_TRUE(server.captured_requests().empty());
}

TEST_F(Cli, GroupsCreateListUpdateDelete) {
    const int64_t folder = server.state().add_folder("营销");
    json created = ok({"groups", "create", "--name", "VIP 客户", "--description", "big", "--folder", std::to_string(folder)});
    ASSERT_TRUE(created.contains("id"));
    const int64_t id = created["id"].get<int64_t>();
    auto g = server.state().group(id);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->name, "VIP 客户");
    EXPECT_EQ(g->folder_id, folder);

    for (int i = 0; i < 4; ++i) server.state().add_group("other" + std::to_string(i));
    json page = ok({"groups", "list", "--search", "VIP"});
    EXPECT_EQ(page["total"], 1);
    ASSERT_EQ(page["records"].size(), 1u);
    EXPECT_EQ(page["records"][0]["id"], id);
    EXPECT_EQ(page["records"][0]["name"], "VIP 客户");

    json first_page = ok({"groups", "list"});  // page_size 3 from the config
    EXPECT_EQ(first_page["records"].size(), 3u);
    EXPECT_EQ(first_page["total"], 5);
    json second = ok({"groups", "list", "--page", "2", "--size", "2"});
    EXPECT_EQ(second["records"].size(), 2u);
    json all = ok({"groups", "list", "--all"});
    ASSERT_TRUE(all.is_array());
    EXPECT_EQ(all.size(), 5u);

    EXPECT_EQ(ok({"groups", "update", std::to_string(id), "--name", "VVIP"}), (json{{"ok", true}}));
    EXPECT_EQ(server.state().group(id)->name, "VVIP");
    EXPECT_EQ(ok({"groups", "delete", std::to_string(id)}), (json{{"ok", true}}));
    EXPECT_FALSE(server.state().group(id));
}

TEST_F(Cli, FoldersAddTreeUpdateDelete) {
    json root = ok({"folders", "add", "--name", "root"});
    const int64_t root_id = root["id"].get<int64_t>();
    const std::string code = server.state().folder(root_id)->code;
    json child = ok({"folders", "add", "--name", "child", "--parent", code});
    const int64_t child_id = child["id"].get<int64_t>();
    json tree = ok({"folders", "tree"});
    ASSERT_TRUE(tree.is_array());
    ASSERT_EQ(tree.size(), 1u);
    EXPECT_EQ(tree[0]["id"], root_id);
    ASSERT_EQ(tree[0]["subList"].size(), 1u);
    EXPECT_EQ(tree[0]["subList"][0]["id"], child_id);
    EXPECT_EQ(ok({"folders", "update", std::to_string(child_id), "--name", "kid"}), (json{{"ok", true}}));
    EXPECT_EQ(server.state().folder(child_id)->name, "kid");
    EXPECT_EQ(ok({"folders", "delete", std::to_string(child_id)}), (json{{"ok", true}}));
    EXPECT_FALSE(server.state().folder(child_id));
}

TEST_F(Cli, MembersAddListRemoveSetAndCustomerGroups) {
    const int64_t g1 = server.state().add_group("g1");
    const int64_t g2 = server.state().add_group("g2");
    const int64_t smart = server.state().add_group("s", "", std::nullopt, 2);
    for (int64_t c = 1; c <= 7; ++c) server.state().add_membership(c, g1);
    server.state().add_membership(3, smart);

    EXPECT_EQ(ok({"members", "add", "3", std::to_string(g2)}), (json{{"ok", true}}));
    EXPECT_TRUE(server.state().is_member(3, g2));

    json page = ok({"members", "list", std::to_string(g1)});
    EXPECT_EQ(page["total"], 7);
    EXPECT_EQ(page["records"].size(), 3u);
    json all = ok({"members", "list", std::to_string(g1), "--all"});
    ASSERT_TRUE(all.is_array());
    ASSERT_EQ(all.size(), 7u);
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i]["id"], static_cast<int64_t>(i + 1));
    const int64_t nobody = server.state().add_group("nobody");
    json empty = ok({"members", "list", std::to_string(nobody), "--all"});
    EXPECT_EQ(empty, json::array());

    json groups = ok({"customer", "groups", "3"});
    ASSERT_EQ(groups.size(), 2u);
    json smart_groups = ok({"customer", "groups", "3", "--type", "smart"});
    ASSERT_EQ(smart_groups.size(), 1u);
    EXPECT_EQ(smart_groups[0]["id"], smart);

    EXPECT_EQ(ok({"members", "remove", "3", std::to_string(g1)}), (json{{"ok", true}}));
    EXPECT_FALSE(server.state().is_member(3, g1));
    EXPECT_EQ(ok({"members", "set", "4", std::to_string(g2)}), (json{{"ok", true}}));
    EXPECT_EQ(server.state().groups_of(4), std::vector<int64_t>{g2});
}

TEST_F(Cli, RefusedCallExitsOneWithOneLineNamingEndpointAndCode) {
    CliRun r = run({"members", "add", "424242", "999999"});
    expect_one_line_failure(r);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("/customer-group-ref/customerAddGroups"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("code -1"), std::string::npos) << r.err;
}

TEST_F(Cli, WrongTokenIsAnAuthFailureThatDoesNotShowTheToken) {
    env[kTokenVar] = "not-the-sim-token-5c1e";
    CliRun r = run({"folders", "tree"});
    expect_one_line_failure(r);
    EXPECT_NE(r.err.find("authentication refused"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("not-the-sim-token-5c1e"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("sim-token"), std::string::npos) << r.err;
}

TEST_F(Cli, MissingTokenVariableFails) {
    unset_env.push_back(kTokenVar);
    CliRun r = run({"folders", "tree"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_FALSE(r.err.empty());
}

TEST_F(Cli, UnreachableServerExitsOne) {
    // A port that was just free: nothing listens there.
    sim::Server gone{sim::ServerOptions{}};
    gone.start();
    const std::string url = gone.base_url();
    gone.stop();
    config = write_config(url, "unreachable.yaml");
    CliRun r = run({"groups", "list"});
    expect_one_line_failure(r);
    EXPECT_NE(r.err.find("simpleQuery"), std::string::npos) << r.err;
}

TEST_F(Cli, ConfigProblemsExitTwo) {
    CliRun missing = run_raw({"--config", (dir / "nope.yaml").string(), "api", "folders", "tree"});
    expect_one_line_failure(missing, 2);
    std::ofstream(dir / "bad.yaml") << "cdp:\n  base_url: 12\n  bogus_key: 1\n";
    CliRun bad = run_raw({"--config", (dir / "bad.yaml").string(), "api", "folders", "tree"});
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
    EXPECT_NE(bad.err.find("bad.yaml"), std::string::npos) << bad.err;
}

// Every command that loads the configuration says a bad one the same way: its own name, the
// file, exit 2 before doing anything.
TEST_F(Cli, EveryCommandSaysABadConfigWithItsNameAndExitsTwo) {
    std::ofstream(dir / "bad.yaml") << "cdp:\n  base_url: 12\n  bogus_key: 1\n";
    const std::vector<std::pair<std::vector<std::string>, std::string>> commands = {
        {{"run"}, "run"},          {{"run", "--once"}, "run"},       {{"resync"}, "resync"},
        {{"plan"}, "plan"},        {{"status"}, "status"},           {{"retry-failed"}, "retry-failed"},
        {{"api", "folders", "tree"}, "api"},
    };
    for (const auto& [args, name] : commands) {
        std::vector<std::string> argv{"--config", (dir / "bad.yaml").string()};
        argv.insert(argv.end(), args.begin(), args.end());
        CliRun r = run_raw(argv);
        EXPECT_EQ(r.exit_code, 2) << name << ": " << r.err;
        EXPECT_EQ(r.err.rfind("cdp-sync " + name + ": ", 0), 0u) << r.err;
        EXPECT_NE(r.err.find("bad.yaml"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("bogus_key"), std::string::npos) << r.err;
        EXPECT_EQ(r.out, "") << name;
    }
}

TEST_F(Cli, ConfigPathFromTheEnvironment) {
    env["CDP_SYNC_CONFIG"] = config.string();
    CliRun r = run_raw({"api", "folders", "tree"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), json::array());
}

}  // namespace
}  // namespace cdpsync::cli
