#include "store/control.hpp"

#include <unistd.h>

#include <stdexcept>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "store/pq.hpp"
#include "store/status.hpp"
#include "store/schema.hpp"

namespace cdpsync::store {
namespace {

std::string quote_schema(const std::string& schema) {
    if (!is_plain_identifier(schema)) throw std::invalid_argument("database.schema is not a plain identifier");
    return "\"" + schema + "\"";
}

std::vector<std::string> text_array(const pqxx::field& f) {
    std::vector<std::string> out;
    if (f.is_null()) return out;
    auto parser = f.as_array();
    for (auto [kind, value] = parser.get_next(); kind != pqxx::array_parser::done; std::tie(kind, value) = parser.get_next())
        if (kind == pqxx::array_parser::string_value) out.push_back(value);
    return out;
}

std::string to_text_array(const std::vector<std::string>& values) {
    std::string s = "{";
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) s += ',';
        s += '"';
        for (char c : values[i]) {
            if (c == '"' || c == '\\') s += '\\';
            s += c;
        }
        s += '"';
    }
    return s + "}";
}

ResyncRequest read_request(const pqxx::row& r) {
    ResyncRequest q;
    q.id = r["id"].as<int64_t>();
    q.force = r["force"].as<bool>();
    q.only_groups = text_array(r["only_groups"]);
    q.requested_by = r["requested_by"].as<std::string>("");
    q.started = !r["started_at"].is_null();
    q.finished = !r["finished_at"].is_null();
    if (!r["run_id"].is_null()) q.run_id = r["run_id"].as<int64_t>();
    q.outcome = r["outcome"].as<std::string>("");
    if (!r["exit_code"].is_null()) q.exit_code = r["exit_code"].as<int>();
    q.message = r["message"].as<std::string>("");
    return q;
}

constexpr const char* kRequestColumns =
    "id, force, only_groups, requested_by, started_at, finished_at, run_id, outcome, exit_code, message";

std::string hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "";
    return buf;
}

}  // namespace

void ensure_daemon_tables(Connection& conn, const std::string& schema) {
    migrate_schema(conn, schema, *spdlog::default_logger());
}

std::unique_ptr<Connection> connect_control(const std::string& dsn, const std::string& application_name) {
    return std::make_unique<Connection>(dsn, kControlStatementTimeout, application_name);
}

std::optional<LeaderInfo> current_leader(Connection& connection, const std::string& schema) {
    const std::string q = quote_schema(schema);
    pqxx::work tx(pq(connection));
    auto r = tx.exec_params(
        "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
        " AND l.classid = $1::oid AND l.objid = (hashtext($2)::bigint & 4294967295)::oid"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        kLeaderLock, schema);
    if (r.empty()) return std::nullopt;
    LeaderInfo info;
    info.backend_pid = r[0][0].as<int>();
    auto exists = tx.exec_params1("SELECT to_regclass($1) IS NOT NULL", schema + ".daemon_leader")[0].as<bool>();
    if (exists) {
        auto d = tx.exec(with_schema(
            "SELECT pid, host, phase, extract(epoch FROM now() - phase_since)::float8,"
            " extract(epoch FROM now() - heartbeat_at)::float8, extract(epoch FROM next_full_at - now())::float8,"
            " extract(epoch FROM now() - started_at)::float8 FROM @.daemon_leader WHERE id = 1",
            q));
        if (!d.empty()) {
            const auto& row = d[0];
            if (!row[0].is_null()) info.pid = row[0].as<int>();
            info.host = row[1].as<std::string>("");
            info.phase = row[2].as<std::string>("");
            if (!row[3].is_null()) info.phase_seconds = row[3].as<double>();
            if (!row[4].is_null()) info.heartbeat_age_s = row[4].as<double>();
            if (!row[5].is_null()) info.next_full_in_s = row[5].as<double>();
            if (!row[6].is_null()) info.leader_for_s = row[6].as<double>();
        }
    }
    tx.commit();
    return info;
}

void set_leader_phase(Connection& connection, const std::string& schema, const std::string& phase) {
    pqxx::nontransaction tx(pq(connection));
    tx.exec_params(with_schema("UPDATE @.daemon_leader SET phase = $1, heartbeat_at = now() WHERE id = 1",
                              quote_schema(schema)),
                   phase);
}

int64_t enqueue_resync(Connection& connection, const std::string& schema, const std::string& requested_by,
                       bool force, const std::vector<std::string>& only_groups) {
    const std::string q = quote_schema(schema);
    pqxx::work tx(pq(connection));
    auto id = tx.exec_params1(with_schema("INSERT INTO @.resync_request (requested_by, force, only_groups)"
                                         " VALUES ($1, $2, $3::text[]) RETURNING id",
                                         q),
                              requested_by, force, to_text_array(only_groups))[0]
                  .as<int64_t>();
    tx.exec0(std::string("NOTIFY ") + kNotifyChannel + ", 'resync'");
    tx.commit();
    return id;
}

std::optional<ResyncRequest> get_resync(Connection& connection, const std::string& schema, int64_t id) {
    const std::string q = quote_schema(schema);
    pqxx::nontransaction tx(pq(connection));
    auto r = tx.exec_params(with_schema(std::string("SELECT ") + kRequestColumns + " FROM @.resync_request WHERE id = $1", q), id);
    if (r.empty()) return std::nullopt;
    return read_request(r[0]);
}

bool withdraw_resync(Connection& connection, const std::string& schema, int64_t id) {
    const std::string q = quote_schema(schema);
    pqxx::work tx(pq(connection));
    auto r = tx.exec_params(with_schema("DELETE FROM @.resync_request WHERE id = $1 AND started_at IS NULL", q), id);
    tx.commit();
    return r.affected_rows() == 1;
}

int64_t queued_resyncs(Connection& connection, const std::string& schema) {
    const std::string q = quote_schema(schema);
    pqxx::nontransaction tx(pq(connection));
    return tx.exec1(with_schema("SELECT count(*) FROM @.resync_request WHERE finished_at IS NULL", q))[0].as<int64_t>();
}

// An empty payload or the schema's name means the data changed. Payloads "resync" and
// "resync-done" are cdp-sync's own (a request queued or answered): they only wake the loop,
// which then looks at the queue; so does a payload naming another schema.
struct Control::Receiver : pqxx::notification_receiver {
    bool notified = false;
    std::string schema;
    Receiver(pqxx::connection& c, std::string s) : pqxx::notification_receiver(c, kNotifyChannel), schema(std::move(s)) {}
    void operator()(const std::string& payload, int) override {
        if (payload.empty() || payload == schema) notified = true;
    }
};

Control::Control(const std::string& dsn, std::string schema, std::shared_ptr<spdlog::logger> log)
    : schema_(std::move(schema)), q_(quote_schema(schema_)), log_(std::move(log)) {
    conn_ = connect_control(dsn, "cdp-sync daemon");
    ensure_daemon_tables(*conn_, schema_);
    receiver_ = std::make_unique<Receiver>(pq(*conn_), schema_);
}

Control::~Control() {
    try {
        receiver_.reset();
    } catch (...) {
    }
    if (conn_) conn_->close();  // ends the session: releases the leader lock
}

int Control::socket() const { return conn_->socket(); }

bool Control::try_lead() {
    if (leading_) return true;
    pqxx::nontransaction tx(pq(*conn_));
    leading_ = tx.exec_params1("SELECT pg_try_advisory_lock($1, hashtext($2))", kLeaderLock, schema_)[0].as<bool>();
    if (leading_) {
        tx.exec_params(with_schema("INSERT INTO @.daemon_leader (id, pid, host, started_at, phase, phase_since, heartbeat_at)"
                                  " VALUES (1, $1, $2, now(), 'starting', now(), now())"
                                  " ON CONFLICT (id) DO UPDATE SET pid = $1, host = $2, started_at = now(),"
                                  " phase = 'starting', phase_since = now(), heartbeat_at = now(), next_full_at = NULL",
                                  q_),
                       static_cast<int>(::getpid()), hostname());
    }
    return leading_;
}

void Control::ping() {
    pqxx::nontransaction tx(pq(*conn_));
    tx.exec1("SELECT 1");
}

bool Control::take_notified() {
    if (!conn_->is_open()) throw pqxx::broken_connection("the control connection is closed");
    pq(*conn_).get_notifs();
    const bool n = receiver_->notified;
    receiver_->notified = false;
    return n;
}

void Control::publish(const std::string& phase, std::optional<std::chrono::seconds> next_full_in) {
    pqxx::nontransaction tx(pq(*conn_));
    tx.exec_params(with_schema("UPDATE @.daemon_leader SET phase_since = CASE WHEN phase IS DISTINCT FROM $1"
                              " THEN now() ELSE phase_since END, phase = $1, heartbeat_at = now(),"
                              " next_full_at = now() + make_interval(secs => $2::float8) WHERE id = 1",
                              q_),
                   phase, next_full_in ? std::optional<double>(static_cast<double>(next_full_in->count())) : std::nullopt);
}

void Control::heartbeat() {
    pqxx::nontransaction tx(pq(*conn_));
    tx.exec0(with_schema("UPDATE @.daemon_leader SET heartbeat_at = now() WHERE id = 1", q_));
}

std::optional<double> Control::seconds_since_last_full() { return seconds_since_success(*conn_, schema_, true); }

std::string Control::change_value(const std::string& query) {
    pqxx::work tx(pq(*conn_));
    auto r = tx.exec(query);
    tx.commit();
    std::string out;
    if (r.empty()) return out;
    for (pqxx::row::size_type i = 0; i < r[0].size(); ++i) {
        if (i) out += '|';
        out += r[0][i].is_null() ? "\\N" : r[0][i].c_str();
    }
    return out;
}

std::optional<ResyncRequest> Control::claim_resync(int pid) {
    pqxx::work tx(pq(*conn_));
    auto r = tx.exec_params(
        with_schema(std::string("UPDATE @.resync_request SET started_at = now(), message = 'taken by pid ' || $1"
                               " WHERE id = (SELECT id FROM @.resync_request WHERE started_at IS NULL"
                               " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ") +
                       kRequestColumns,
                   q_),
        pid);
    tx.commit();
    if (r.empty()) return std::nullopt;
    return read_request(r[0]);
}

void Control::finish_resync(int64_t id, std::optional<int64_t> run_id, const std::string& outcome, int exit_code,
                            const std::string& message) {
    pqxx::work tx(pq(*conn_));
    tx.exec_params(with_schema("UPDATE @.resync_request SET finished_at = now(), run_id = $2, outcome = $3,"
                              " exit_code = $4, message = $5 WHERE id = $1",
                              q_),
                   id, run_id, outcome, exit_code, message);
    tx.exec0(std::string("NOTIFY ") + kNotifyChannel + ", 'resync-done'");
    tx.commit();
}

int Control::requeue_orphans() {
    pqxx::work tx(pq(*conn_));
    auto r = tx.exec(with_schema("UPDATE @.resync_request SET started_at = NULL, message = 'requeued: its leader stopped'"
                                " WHERE started_at IS NOT NULL AND finished_at IS NULL",
                                q_));
    tx.commit();
    return static_cast<int>(r.affected_rows());
}

}  // namespace cdpsync::store
