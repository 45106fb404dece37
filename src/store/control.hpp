// The daemon's control connection to PostgreSQL, separate from the engine's: it holds the
// leader lock, LISTENs on channel `cdp_sync`, runs the change query and keeps the daemon's
// tables (the leader's phase, the resync request queue). The free functions are the other
// side of those tables (`status`, `resync` through a daemon) on any connection.
//
// One writer: the leader holds a session advisory lock (key kLeaderLock, hashtext(schema)),
// distinct from the engine's apply lock. PostgreSQL is the coordinator: when the leader's
// process dies (kill -9 included) its session ends and the lock is free; when PostgreSQL
// restarts the connection breaks and the leader knows it is no longer one. The connection
// never reconnects by itself (pqxx reactivation is inhibited): a broken one is replaced.
//
// | table (schema)   | holds                                                            |
// |------------------|------------------------------------------------------------------|
// | daemon_leader    | one row: the leader's pid, host, phase, heartbeat, next full run |
// | resync_request   | `cdp-sync resync` asking the running daemon; outcome when done   |
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "store/connection.hpp"

namespace cdpsync::store {

inline constexpr const char* kNotifyChannel = "cdp_sync";
inline constexpr int kLeaderLock = 0x0cd95003;  // first key; the engine uses ...01 and ...02

// Migrates the cdp_sync schema, which holds the daemon tables since migration 2.
void ensure_daemon_tables(Connection& conn, const std::string& schema);

// A Connection (reactivation off, TCP keepalives) with kControlStatementTimeout: the
// daemon's own queries are small, and its event loop waits for them.
inline constexpr std::chrono::seconds kControlStatementTimeout{30};
std::unique_ptr<Connection> connect_control(const std::string& dsn, const std::string& application_name);

struct ResyncRequest {
    int64_t id = 0;
    bool force = false;
    std::vector<std::string> only_groups;
    std::string requested_by;
    bool started = false;
    bool finished = false;
    std::optional<int64_t> run_id;
    std::string outcome;
    std::optional<int> exit_code;
    std::string message;
};

struct LeaderInfo {
    int backend_pid = 0;      // the PostgreSQL backend holding the lock
    std::optional<int> pid;   // the daemon's process id, host, phase (from daemon_leader)
    std::string host;
    std::string phase;
    std::optional<double> phase_seconds;
    std::optional<double> heartbeat_age_s;
    std::optional<double> next_full_in_s;
    std::optional<double> leader_for_s;
};

// Who holds the leader lock now (pg_locks), with what it last published. Works on any
// connection to the same database.
std::optional<LeaderInfo> current_leader(Connection& conn, const std::string& schema);

// The leader's published phase and heartbeat, from another connection of the leader.
void set_leader_phase(Connection& conn, const std::string& schema, const std::string& phase);

// Resync requests, from either side.
int64_t enqueue_resync(Connection& conn, const std::string& schema, const std::string& requested_by,
                       bool force, const std::vector<std::string>& only_groups);
std::optional<ResyncRequest> get_resync(Connection& conn, const std::string& schema, int64_t id);
// Removes a request nobody has started yet; false when the leader already took it.
bool withdraw_resync(Connection& conn, const std::string& schema, int64_t id);
int64_t queued_resyncs(Connection& conn, const std::string& schema);

class Control {
public:
    // Connects (throws: see classify_db_error), creates the daemon tables and LISTENs.
    Control(const std::string& dsn, std::string schema, std::shared_ptr<spdlog::logger> log);
    ~Control();
    Control(const Control&) = delete;
    Control& operator=(const Control&) = delete;

    Connection& connection() { return *conn_; }
    int socket() const;

    // pg_try_advisory_lock on the leader key; true once held.
    bool try_lead();
    bool leading() const { return leading_; }
    // Round trip; throws (DbError::connection_lost) when the connection (and so the lock) is gone.
    void ping();
    // Reads pending notifications (non-blocking); true when a data change was announced on
    // `cdp_sync` since the last call: `NOTIFY cdp_sync` (every daemon on the database wakes)
    // or `NOTIFY cdp_sync, 'SCHEMA'` (only the one of that schema). Throws
    // DbError::connection_lost when the connection is gone.
    bool take_notified();

    // The leader's row in daemon_leader.
    void publish(const std::string& phase, std::optional<std::chrono::seconds> next_full_in);
    void heartbeat();
    // Seconds since the last successful full run, nullopt when there never was one.
    std::optional<double> seconds_since_last_full();

    // The change query's value now, as text ("" when it returns no row).
    std::string change_value(const std::string& query);

    // Leader side of the request queue.
    std::optional<ResyncRequest> claim_resync(int pid);
    void finish_resync(int64_t id, std::optional<int64_t> run_id, const std::string& outcome, int exit_code,
                       const std::string& message);
    // Requests started by a leader that died go back to the queue.
    int requeue_orphans();

private:
    struct Receiver;
    std::string schema_;
    std::string q_;  // quoted schema
    std::shared_ptr<spdlog::logger> log_;
    std::unique_ptr<Connection> conn_;
    std::unique_ptr<Receiver> receiver_;
    bool leading_ = false;
};

}  // namespace cdpsync::store
