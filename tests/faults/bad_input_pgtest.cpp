// Bad input, end to end through the binary: configs with each kind of mistake, rows with
// every kind of bad value, a desired query that errors, one that suddenly returns nothing
// (the delete guard) and CDP replies with wrong types. The detailed cases are elsewhere:
// config mistakes key by key in tests/config/config_test.cpp, row validation in
// tests/sync/sync_engine_pgtest.cpp (BadRows..., FailingSourceQuery..., DeleteGuard...),
// malformed replies call by call in tests/cdp/api_reply_test.cpp.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "faults/fault_fixture.hpp"
#include "support/test_server.hpp"

namespace cdpsync::testing::faults {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;

using BadInputTest = BinarySyncTest;

void replace(std::string& text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
}

TEST_F(BadInputTest, ConfigWithEachKindOfMistakeIsRefusedBeforeAnyCall) {
    Rows rows;
    add_range(rows, 1, 40, "cfg-ok");
    desire(rows);
    const std::string good = config_text();
    struct Mistake {
        std::string kind;
        std::string from, to;   // replaced in the good config
        std::string expected;   // the output names it
    };
    const std::vector<Mistake> mistakes = {
        {"unknown key", "sync:\n", "sync:\n  max_delete: 5\n", "max_delete"},
        {"wrong type", "sync:\n", "sync:\n  max_deletes: lots\n", "max_deletes"},
        {"out of range", "max_in_flight: 4", "max_in_flight: 0", "max_in_flight"},
        {"missing required key", "  desired_memberships:", "  #desired_memberships:", "desired_memberships"},
        {"bad enum", "sync:\n", "sync:\n  mode: mirrror\n", "mode"},
        {"YAML syntax", "sync:\n", "sync:\n  mode: [mirror\n", "YAML syntax error"},
        {"bad schema name", "schema: " + schema, "schema: \"bad-schema;\"", "schema"},
        {"token not available", "token_env: CDP_SYNC_TEST_TOKEN", "token_env: CDP_SYNC_FAULTS_NO_SUCH_VAR",
         "CDP_SYNC_FAULTS_NO_SUCH_VAR"},
        {"PostgreSQL unreachable", "dsn: \"" + dsn + "\"", "dsn: \"host=127.0.0.1 port=1 connect_timeout=2\"",
         "127.0.0.1"},
    };
    int refused = 0;
    for (const auto& m : mistakes) {
        std::string text = good;
        replace(text, m.from, m.to);
        const auto path = write_config(text, "bad.yaml");
        auto [code, out] = run_binary({"--config", path.string(), "resync"});
        EXPECT_NE(code, 0) << m.kind << ":\n" << out;
        EXPECT_NE(out.find(m.expected), std::string::npos) << m.kind << ": the message does not name " << m.expected
                                                           << ":\n" << out;
        EXPECT_EQ(write_calls(), 0) << m.kind;
        refused += code != 0 && code != -1 && write_calls() == 0 ? 1 : 0;
    }
    const int64_t calls_before_good = server->stats()["total"].get<int64_t>();
    EXPECT_EQ(calls_before_good, 0) << "a bad config made CDP calls";

    auto [code, out] = resync_binary();
    EXPECT_EQ(code, 0) << out;
    const int64_t lost = lost_ops(server->state(), rows);
    const int64_t dup = Ledger(kTimeoutMs).count(server->state().write_log()).duplicated;
    EXPECT_EQ(lost, 0);
    EXPECT_EQ(dup, 0);
    record({"bad config: each kind of mistake, then the good one",
            std::to_string(mistakes.size()) + " bad configs, " + std::to_string(refused) + " refused, no write",
            run_retries(dsn, schema), code == 0 && refused == static_cast<int>(mistakes.size()) && lost == 0, lost,
            dup});
}

TEST_F(BadInputTest, RowsWithEveryKindOfBadValueAreSkippedAndTheRestConverges) {
    exec("CREATE TABLE " + src + ".bad (customer_id text, group_name text)");
    exec("INSERT INTO " + src + ".bad VALUES"
         " (NULL, 'rows-ok'), ('abc', 'rows-ok'), ('12.5', 'rows-ok'), ('0', 'rows-ok'), ('-7', 'rows-ok'),"
         " ('99999999999999999999999', 'rows-ok'), ('5', NULL), ('6', ''), ('7', '   '), ('8', E'tab\\there'),"
         " ('9', ' leading'), ('10', 'trailing '), ('11', repeat('x', 65)), ('1', 'rows-ok'), (' 2 ', 'rows-ok')");
    const int64_t bad_rows = 13;  // all but the two last (a duplicate and a padded valid id)
    Rows rows;
    add_range(rows, 1, 60, "rows-ok");
    desire(rows);
    std::string text = config_text();
    replace(text, "SELECT customer_id, group_name FROM " + src + ".m",
            "SELECT customer_id::text, group_name FROM " + src + ".m UNION ALL SELECT customer_id, group_name FROM " +
                src + ".bad");
    config_path = write_config(text);

    auto [code, out] = resync_binary();
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(query_or("SELECT rows_rejected FROM " + schema + ".run ORDER BY id DESC LIMIT 1", -1), bad_rows) << out;
    EXPECT_EQ(query_or("SELECT duplicates FROM " + schema + ".run ORDER BY id DESC LIMIT 1", -1), 2) << out;
    // Nothing but the 60 valid adds was written.
    for (const auto& e : server->state().write_log())
        EXPECT_TRUE(e.customer_id == 0 || (e.customer_id >= 1 && e.customer_id <= 60)) << e.customer_id;
    EXPECT_EQ(write_calls(), 1 + 60);  // the group, one add per customer
    const int64_t lost = lost_ops(server->state(), rows);
    const int64_t dup = Ledger(kTimeoutMs).count(server->state().write_log()).duplicated + duplicate_groups(server->state());
    EXPECT_EQ(lost, 0);
    EXPECT_EQ(dup, 0);
    record({"bad rows: NULL/text/fraction/0/negative/huge ids, NULL/empty/blank/control/padded/long names",
            std::to_string(bad_rows) + " bad rows skipped", run_retries(dsn, schema), code == 0 && lost == 0 && dup == 0,
            lost, dup});
}

TEST_F(BadInputTest, DesiredQueryThatErrorsChangesNothing) {
    const int64_t g = server->state().add_group("query-a");
    for (int64_t c = 1; c <= 50; ++c) server->state().add_membership(c, g);
    Rows rows;
    add_range(rows, 11, 60, "query-a");  // 10 removes, 20 adds once the query works
    desire(rows);
    const std::string good = config_text();
    std::string broken = good;
    replace(broken, "FROM " + src + ".m\"", "FROM " + src + ".m WHERE 1 / (customer_id - customer_id) = 1\"");
    config_path = write_config(broken);
    auto [code, out] = resync_binary();
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("division by zero"), std::string::npos) << out;
    EXPECT_EQ(write_calls(), 0);
    EXPECT_EQ(server->state().members_of(g).size(), 50u) << "a failed query must change nothing";

    config_path = write_config(good);
    std::tie(code, out) = resync_binary();
    EXPECT_EQ(code, 0) << out;
    const int64_t lost = lost_ops(server->state(), rows);
    const int64_t dup = Ledger(kTimeoutMs).count(server->state().write_log()).duplicated;
    EXPECT_EQ(lost, 0);
    EXPECT_EQ(dup, 0);
    record({"desired query errors (division by zero), then fixed", "1 failing query, 0 writes while it failed",
            run_retries(dsn, schema), code == 0 && lost == 0 && dup == 0, lost, dup});
}

TEST_F(BadInputTest, DesiredQuerySuddenlyEmptyIsHeldByTheDeleteGuard) {
    // The groups are declared in desired_groups, so a group whose memberships all vanish
    // stays managed. (Without desired_groups such a group silently stops being managed: no
    // guard, no removal; see the report of the fault suite.)
    std::string text = config_text("  max_deletes: 100\n");
    replace(text, "  schema: ", "  desired_groups: \"SELECT name, description FROM " + src + ".g\"\n  schema: ");
    config_path = write_config(text);
    exec("INSERT INTO " + src + ".g VALUES ('guard-a', 'held by the guard')");
    Rows rows;
    add_range(rows, 1, 300, "guard-a");
    desire(rows);
    auto [code, out] = resync_binary();
    ASSERT_EQ(code, 0) << out;
    const int64_t writes = write_calls();

    exec("TRUNCATE " + src + ".m");  // the query now returns nothing
    std::tie(code, out) = resync_binary();
    EXPECT_EQ(code, 3) << out;
    EXPECT_EQ(write_calls(), writes) << "the guard must stop the run before any write";
    EXPECT_EQ(server->state().members_of(*group_id("guard-a")).size(), 300u);

    desire(rows);  // the data comes back
    std::tie(code, out) = resync_binary();
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(write_calls(), writes) << "nothing to do once the rows are back";
    const int64_t lost = lost_ops(server->state(), rows);
    const int64_t dup = Ledger(kTimeoutMs).count(server->state().write_log()).duplicated;
    EXPECT_EQ(lost, 0);
    EXPECT_EQ(dup, 0);
    record({"desired query suddenly returns nothing (delete guard, max_deletes 100)",
            "300 removals held (exit 3), 0 writes", run_retries(dsn, schema), code == 0 && lost == 0 && dup == 0, lost,
            dup});
}

// A proxy in front of the simulator that gives some replies fields of the wrong type.
class WrongTypesProxy {
public:
    explicit WrongTypesProxy(uint16_t sim_port) : sim_port_(sim_port) {
        server_ = std::make_unique<TestServer>(TestServerOptions{}, [this](const TestRequest& r) { return handle(r); });
    }
    std::string base_url() const { return server_->base_url("/openapi"); }
    void stop() { server_->stop(); }

    // How many replies of each kind to mangle (the first ones that come).
    int bad_totals = 2, string_ids = 2, bad_group_ids = 1, bad_write_codes = 3;
    int mangled = 0;
    std::vector<WriteKey> mangled_writes;  // applied by the simulator, answered with garbage

private:
    TestResponse handle(const TestRequest& r) {
        net::io_context ioc;
        beast::tcp_stream stream(ioc);
        stream.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), sim_port_));
        bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(r.method), r.target, 11);
        for (const auto& [k, v] : r.headers)
            if (beast::iequals(k, "token") || beast::iequals(k, "content-type")) req.set(k, v);
        req.set(bhttp::field::host, "127.0.0.1");
        req.body() = r.body;
        req.prepare_payload();
        bhttp::write(stream, req);
        beast::flat_buffer buf;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(stream, buf, res);
        TestResponse out = reply(res.result_int(), res.body());
        if (res.count(bhttp::field::retry_after))
            out.headers.emplace_back("Retry-After", std::string(res[bhttp::field::retry_after]));

        std::lock_guard lock(mutex_);
        auto j = nlohmann::json::parse(res.body(), nullptr, false);
        if (res.result_int() != 200 || !j.is_object() || j.value("code", -1) != 0) return out;
        const std::string& t = r.target;
        if (t.find("getCustomerPageByGroupId") != std::string::npos && bad_totals > 0) {
            --bad_totals;
            j["data"]["total"] = "abc";
        } else if (t.find("getCustomerPageByGroupId") != std::string::npos && string_ids > 0 &&
                   !j["data"]["records"].empty()) {
            --string_ids;
            for (auto& rec : j["data"]["records"]) rec["id"] = "x" + std::to_string(rec["id"].get<int64_t>());
        } else if (t.find("simpleQuery") != std::string::npos && bad_group_ids > 0 && !j["data"]["records"].empty()) {
            --bad_group_ids;
            for (auto& rec : j["data"]["records"]) rec["id"] = nlohmann::json::array({rec["id"]});
        } else if (t.find("customerAddGroups") != std::string::npos && bad_write_codes > 0) {
            --bad_write_codes;
            j["code"] = "zero";
            const auto body = nlohmann::json::parse(r.body);
            std::vector<int64_t> ids = body["customerGroupIdList"].get<std::vector<int64_t>>();
            std::sort(ids.begin(), ids.end());
            mangled_writes.push_back({"customer-group-ref/customerAddGroups", body["customerId"].get<int64_t>(), ids});
        } else {
            return out;
        }
        ++mangled;
        out.body = j.dump();
        return out;
    }

    uint16_t sim_port_;
    std::mutex mutex_;
    std::unique_ptr<TestServer> server_;
};

TEST_F(BadInputTest, RepliesWithWrongTypesNeverCorruptTheCdp) {
    const int64_t g = server->state().add_group("types-a");
    for (int64_t c = 1; c <= 100; ++c) server->state().add_membership(c, g);
    server->state().add_group("types-b");
    Rows rows;
    add_range(rows, 21, 100, "types-a");  // 20 removes, 20 adds
    add_range(rows, 1, 30, "types-b");    // 30 adds
    desire(rows);
    WrongTypesProxy proxy(server->port());
    base_url = proxy.base_url();
    config_path = write_config(config_text());

    int runs = 0, code = -1;
    std::string out;
    while (runs < 6 && code != 0) {
        ++runs;
        std::tie(code, out) = resync_binary();
    }
    EXPECT_EQ(code, 0) << "after " << runs << " runs:\n" << out;
    EXPECT_GT(runs, 1) << "the wrong types went unnoticed";
    proxy.stop();
    // Only the true diff was ever written: adds of 101..120 to types-a and 1..30 to types-b
    // (one call for customers in both), removes of 1..20 from types-a.
    for (const auto& e : server->state().write_log()) {
        if (!is_membership_write(e.endpoint)) continue;
        const bool add = e.endpoint.find("Add") != std::string::npos;
        EXPECT_TRUE(add ? (e.customer_id >= 1 && e.customer_id <= 30) || (e.customer_id >= 101 && e.customer_id <= 120)
                        : e.customer_id >= 1 && e.customer_id <= 20)
            << e.endpoint << " customer " << e.customer_id;
    }
    Ledger ledger(kTimeoutMs);
    for (const auto& k : proxy.mangled_writes) ledger.mangled(k);
    const auto [writes, lost, dup] = check_end_state(ledger, server->state().write_log(), server->state(), rows);
    record({"replies with wrong types (total \"abc\", string ids, array group ids, code \"zero\")",
            std::to_string(proxy.mangled) + " replies mangled (" + std::to_string(runs) + " runs)",
            run_retries(dsn, schema), code == 0 && lost == 0 && dup == 0, lost, dup, writes.in_flight});
}

}  // namespace
}  // namespace cdpsync::testing::faults
