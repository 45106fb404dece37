#include "store/session.hpp"

#include <regex>

#include <spdlog/spdlog.h>

#include "store/pq.hpp"

namespace cdpsync::store {

std::string redact_dsn(const std::string& dsn) {
    // URI form: scheme://user:password@host
    static const std::regex uri(R"(^(postgres(?:ql)?://[^:/@]*:)[^@]*@)");
    // key=value form: password=secret or password='se cret'
    static const std::regex kv(R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))", std::regex::icase);
    // URI query parameter
    static const std::regex q(R"(([?&]password=)[^&]*)", std::regex::icase);
    std::string out = std::regex_replace(dsn, uri, "$1***@");
    out = std::regex_replace(out, q, "$1***");
    if (out.find("://") == std::string::npos) out = std::regex_replace(out, kv, "$1***");
    return out;
}

std::string to_pg_array(const std::vector<int64_t>& values) {
    return "{" + pqxx::separated_list(",", values.begin(), values.end()) + "}";
}

std::vector<int64_t> parse_pg_array(const std::string& text) {
    std::vector<int64_t> out;
    pqxx::array_parser parser(text.c_str());  // digits and '-' only: any client encoding reads it
    for (auto [kind, value] = parser.get_next(); kind != pqxx::array_parser::done; std::tie(kind, value) = parser.get_next())
        if (kind == pqxx::array_parser::string_value) pqxx::from_string(value, out.emplace_back());
    return out;
}

std::string group_name_problem(const std::string& name) {
    if (name.empty()) return "empty group name";
    size_t chars = 0;
    bool blank = true;
    for (unsigned char c : name) {
        if ((c & 0xC0) != 0x80) ++chars;
        if (c < 0x20 || c == 0x7F) return "group name has control characters";
        if (c != ' ') blank = false;
    }
    if (blank) return "empty group name";
    if (name.front() == ' ' || name.back() == ' ') return "group name has leading or trailing spaces";
    if (chars > static_cast<size_t>(kMaxGroupNameChars)) return "group name longer than 64 characters";
    return "";
}

const char* to_string(OpKind kind) {
    switch (kind) {
    case OpKind::add: return "add";
    case OpKind::remove: return "remove";
    case OpKind::set: return "set";
    }
    return "?";
}

OpKind parse_op_kind(const std::string& s) {
    if (s == "add") return OpKind::add;
    if (s == "remove") return OpKind::remove;
    if (s == "set") return OpKind::set;
    throw std::invalid_argument("unknown op kind: " + s);
}

namespace {

template <typename E, size_t N>
E parse_word(const char* const (&words)[N], const std::string& s, const char* what) {
    for (size_t i = 0; i < N; ++i)
        if (s == words[i]) return static_cast<E>(i);
    throw std::invalid_argument(std::string("unknown run ") + what + ": " + s);
}

constexpr const char* kModes[] = {"full", "incremental"};
constexpr const char* kPhases[] = {"source", "groups", "snapshot", "plan", "apply", "done"};
constexpr const char* kStatuses[] = {"running", "interrupted", "succeeded", "failed", "blocked", "abandoned"};

}  // namespace

const char* to_string(RunMode mode) { return kModes[static_cast<size_t>(mode)]; }
const char* to_string(RunPhase phase) { return kPhases[static_cast<size_t>(phase)]; }
const char* to_string(RunStatus status) { return kStatuses[static_cast<size_t>(status)]; }
RunMode parse_run_mode(const std::string& s) { return parse_word<RunMode>(kModes, s, "mode"); }
RunPhase parse_run_phase(const std::string& s) { return parse_word<RunPhase>(kPhases, s, "phase"); }
RunStatus parse_run_status(const std::string& s) { return parse_word<RunStatus>(kStatuses, s, "status"); }

json SourceStats::to_json() const {
    json ex = json::array();
    for (const auto& e : examples)
        ex.push_back({{"reason", e.reason}, {"customer_id", e.customer_id}, {"group_name", e.group_name}});
    return {{"rows_read", rows_read},     {"rows_rejected", rows_rejected},
            {"duplicates", duplicates},   {"desired", desired},
            {"group_rows", group_rows},   {"rejected_by_reason", rejected_by_reason},
            {"examples", ex}};
}

json PlanSummary::to_json() const {
    json gs = json::array();
    for (const auto& g : groups)
        gs.push_back({{"name", g.name},
                      {"group_id", g.group_id > 0 ? json(g.group_id) : json(nullptr)},
                      {"desired", g.desired},
                      {"mirror", g.mirror},
                      {"adds", g.adds},
                      {"removes", g.removes},
                      {"sample_adds", g.sample_adds},
                      {"sample_removes", g.sample_removes}});
    return {{"adds", adds},
            {"removes", removes},
            {"customers", customers},
            {"calls", {{"customerAddGroups", add_calls},
                       {"customerDeleteGroups", remove_calls},
                       {"customerUpdateGroups", set_calls},
                       {"total", write_calls()}}},
            {"groups", gs}};
}

namespace {

std::string validated_schema(std::string schema) {
    if (!is_plain_identifier(schema))
        throw std::invalid_argument("database.schema is not a plain SQL identifier: " + schema);
    return schema;
}

}  // namespace

Repository::Repository(Connection& conn, const std::string& schema)
    : conn_(conn), schema_(validated_schema(schema)), quoted_schema_(pq(conn).quote_name(schema_)) {}

std::string Repository::sql(const std::string& tmpl) const { return with_schema(tmpl, quoted_schema_); }

Session::Session(const std::string& dsn, const std::string& schema, std::shared_ptr<spdlog::logger> logger)
    : log(logger ? std::move(logger) : spdlog::default_logger()),
      conn(dsn),
      runs(conn, schema),
      source(conn, schema),
      groups(conn, schema),
      mirror(conn, schema),
      planner(conn, schema),
      journal(conn, schema),
      cdp(conn, schema),
      gauges(conn, schema) {
    // synchronous_commit off: each op outcome is its own commit, and waiting for its WAL flush
    // made the journal, not the CDP, the apply's bottleneck. A kill of cdp-sync loses nothing
    // by it (the server still writes the WAL); only a crash of the PostgreSQL server itself can
    // forget the last fraction of a second of outcomes, whose ops are then sent again
    // (idempotent). The planner's temp tables and hash joins fit in memory at 1M rows with
    // these sizes instead of spilling to disk.
    pqxx::nontransaction tx(pq(conn));
    tx.exec0("SET synchronous_commit = off; SET work_mem = '64MB'; SET temp_buffers = '128MB'");
}

}  // namespace cdpsync::store
