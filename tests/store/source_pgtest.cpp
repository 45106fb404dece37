// The source load (store/source.cpp) on its own, against a real PostgreSQL: the same rows
// from customer_id columns of every type give the same counts, reasons, examples and
// desired pairs (integer columns take a path without text casts); text ids and group names
// are judged by the rules they always were.
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "store/session.hpp"
#include "support/pg.hpp"

namespace cdpsync::testing {
namespace {

using Ids = std::vector<int64_t>;
using Row = std::pair<std::optional<std::string>, std::optional<std::string>>;  // (customer id as text, group)

class Source : public ::testing::Test {
protected:
    void SetUp() override {
        CDP_SYNC_REQUIRE_PG(dsn);
        spdlog::set_level(spdlog::level::warn);
        std::tie(schema, src) = unique_schemas("src");
        pg_exec(dsn, "CREATE SCHEMA " + src);
        db.dsn = dsn;
        db.schema = schema;
        s = std::make_unique<store::Session>(dsn, schema);
        s->migrate();
    }

    void TearDown() override {
        s.reset();
        if (!dsn.empty()) pg_exec(dsn, drop_schemas_sql(schema, src));
    }

    // A source table src.<table> (customer_id <type>, group_name text) holding `rows`; the
    // ids are cast from their text in PostgreSQL. db reads it.
    void make_table(const std::string& table, const std::string& type, const std::vector<Row>& rows) {
        pqxx::connection c(dsn);
        pqxx::work w(c);
        w.exec0("CREATE TABLE " + src + "." + table + " (customer_id " + type + ", group_name text)");
        for (const auto& [id, group] : rows)
            w.exec_params("INSERT INTO " + src + "." + table + " VALUES ($1::text::" + type + ", $2)", id, group);
        w.commit();
        db.desired_memberships = "SELECT customer_id, group_name FROM " + src + "." + table;
    }

    // The desired customers of each group the source names: plans against an empty mirror
    // with every group managed, so each desired pair is an add.
    std::map<std::string, Ids> desired_pairs() {
        std::vector<store::ManagedGroup> managed;
        for (const auto& g : s->source.desired_groups()) managed.push_back({g.name, 100 + static_cast<int64_t>(managed.size())});
        s->planner.set_managed(managed);
        store::PlanOptions o;
        o.samples = 1000;
        std::map<std::string, Ids> out;
        for (const auto& g : s->planner.compute_plan(o).groups) {
            EXPECT_EQ(g.adds, static_cast<int64_t>(g.sample_adds.size())) << g.name;
            out[g.name] = g.sample_adds;
        }
        return out;
    }

    std::string dsn, schema, src;
    config::DatabaseConfig db;
    std::unique_ptr<store::Session> s;
};

std::vector<std::tuple<std::string, std::string, std::string>> examples(const store::SourceStats& st) {
    std::vector<std::tuple<std::string, std::string, std::string>> out;
    for (const auto& e : st.examples) out.emplace_back(e.reason, e.customer_id, e.group_name);
    return out;
}

TEST_F(Source, IntegerCustomerIdColumnsReadLikeTheirText) {
    const std::vector<Row> rows = {
        {"1", "alpha"}, {"1", "alpha"}, {"2", "alpha"}, {std::nullopt, "alpha"}, {"-5", "alpha"}, {"0", "beta"},
        {"3", std::nullopt}, {"4", ""}, {"5", "   "}, {"6", std::string(65, 'x')}, {"7", "tab\there"},
        {"8", " padded"}, {"9", "beta"}, {"32000", "beta"}, {"2", "alpha"}};
    const std::map<std::string, int64_t> reasons = {
        {"null customer id", 1},      {"non-positive customer id", 2},
        {"null group name", 1},       {"empty group name", 2},
        {"group name longer than 64 characters", 1}, {"group name has control characters", 1},
        {"group name has leading or trailing spaces", 1}};
    const std::map<std::string, Ids> pairs = {{"alpha", {1, 2}}, {"beta", {9, 32000}}};

    std::optional<std::vector<std::tuple<std::string, std::string, std::string>>> text_examples;
    for (const std::string type : {"text", "bigint", "integer", "smallint", "numeric"}) {
        SCOPED_TRACE(type);
        make_table("m_" + type, type, rows);
        const auto st = s->source.load_source(db);
        EXPECT_EQ(st.rows_read, 15);
        EXPECT_EQ(st.rows_rejected, 9);
        EXPECT_EQ(st.duplicates, 2);
        EXPECT_EQ(st.desired, 4);
        EXPECT_EQ(st.rejected_by_reason, reasons);
        ASSERT_EQ(st.examples.size(), 9u);
        EXPECT_EQ(st.examples[0].reason, "null customer id");
        EXPECT_EQ(st.examples[0].customer_id, "");
        EXPECT_EQ(st.examples[1].reason, "non-positive customer id");
        EXPECT_EQ(st.examples[1].customer_id, "-5");
        EXPECT_EQ(st.examples[1].group_name, "alpha");
        if (!text_examples) text_examples = examples(st);
        EXPECT_EQ(examples(st), *text_examples);  // in the query's order, whatever the type
        EXPECT_EQ(desired_pairs(), pairs);
    }
}

TEST_F(Source, TextCustomerIdsKeepTheirReasons) {
    std::vector<Row> rows;
    for (const char* id : {"abc", "1.5", "", "1234567890123456789012345678901", " 12 ", "+7", "007", "7", "-3", "0",
                           "99999999999999999999", "9223372036854775808", "9223372036854775807",
                           "123456789012345678"})
        rows.emplace_back(id, "g");
    rows.emplace_back(std::nullopt, "g");
    make_table("m", "text", rows);
    const auto st = s->source.load_source(db);
    EXPECT_EQ(st.rows_read, 15);
    EXPECT_EQ(st.rows_rejected, 9);
    EXPECT_EQ(st.duplicates, 2);  // "+7" and "007" are 7
    EXPECT_EQ(st.desired, 4);
    EXPECT_EQ(st.rejected_by_reason, (std::map<std::string, int64_t>{{"customer id is not an integer", 4},
                                                                       {"non-positive customer id", 2},
                                                                       {"customer id out of range", 2},
                                                                       {"null customer id", 1}}));
    ASSERT_GE(st.examples.size(), 4u);
    EXPECT_EQ(st.examples[0].customer_id, "abc");
    EXPECT_EQ(st.examples[3].customer_id, "1234567890123456789012345678901");
    EXPECT_EQ(desired_pairs(),
              (std::map<std::string, Ids>{{"g", {7, 12, 123456789012345678, 9223372036854775807}}}));
}

TEST_F(Source, GroupNamesAreJudgedByGroupNameProblem) {
    std::string e64, e65;
    for (int i = 0; i < 64; ++i) e64 += "\xC3\xA9";  // é: 64 characters, 128 bytes
    e65 = e64 + "\xC3\xA9";
    const std::vector<std::string> names = {"ok", "a b", e64, e65, std::string(64, 'x'), std::string(65, 'x'),
                                            " lead", "trail ", "  ", "", "tab\there", "line\n", "del\x7f",
                                            "\xE4\xB8\xAD\xE6\x96\x87", "a\x01z", "x"};
    std::vector<Row> rows;
    std::map<std::string, int64_t> expected;
    std::map<std::string, Ids> valid;
    int64_t id = 0;
    for (const auto& n : names) {
        rows.emplace_back(std::to_string(++id), n);
        if (const auto why = store::group_name_problem(n); !why.empty()) ++expected[why];
        else valid[n] = {id};
    }
    make_table("m", "bigint", rows);
    const auto st = s->source.load_source(db);
    EXPECT_EQ(st.rows_read, static_cast<int64_t>(names.size()));
    EXPECT_EQ(st.rejected_by_reason, expected);
    EXPECT_EQ(desired_pairs(), valid);
}

TEST_F(Source, OnlyGroupsReadsTheRowsOfThoseGroups) {
    make_table("m", "bigint",
               {{"1", "A"}, {"2", "A"}, {"0", "A"}, {"1", "B"}, {"-1", "B"}, {"3", std::nullopt}, {"2", "A"}});
    const auto st = s->source.load_source(db, {"A"});
    EXPECT_EQ(st.rows_read, 4);
    EXPECT_EQ(st.rows_rejected, 1);
    EXPECT_EQ(st.duplicates, 1);
    EXPECT_EQ(st.desired, 2);
    EXPECT_EQ(st.rejected_by_reason, (std::map<std::string, int64_t>{{"non-positive customer id", 1}}));
    EXPECT_EQ(desired_pairs(), (std::map<std::string, Ids>{{"A", {1, 2}}}));
}

}  // namespace
}  // namespace cdpsync::testing
