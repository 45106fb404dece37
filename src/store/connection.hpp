// One PostgreSQL session of cdp-sync, libpqxx kept inside src/store.
//
// A connection that fails after PostgreSQL restarts instead of reconnecting behind the
// caller's back (pqxx 6 would, losing advisory locks and temp tables without a word).
// TCP keepalives are on unless the DSN sets them (a dead server or network is noticed in
// about a minute, not hours), and a statement running longer than `statement_timeout` is
// cancelled by the server (unless the DSN's options set one), so a stalled PostgreSQL
// ends in an error instead of a process blocked for ever.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace cdpsync::store {

inline constexpr std::chrono::seconds kEngineStatementTimeout{600};

// The DSN with any password replaced by "***" (key=value and URI forms), safe to log.
std::string redact_dsn(const std::string& dsn);
// Postgres array text literal of bigints and back: {1,2,3} (libpqxx's conversions).
std::string to_pg_array(const std::vector<int64_t>& values);
std::vector<int64_t> parse_pg_array(const std::string& text);

// `dsn` with libpq's keepalive keywords added when it sets none (key=value or URI form).
std::string with_keepalives(const std::string& dsn);

class Connection {
public:
    // Connects (throws on failure; see classify_db_error). `application_name` is set when
    // not empty.
    explicit Connection(const std::string& dsn, std::chrono::seconds statement_timeout = kEngineStatementTimeout,
                        const std::string& application_name = "");
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // The socket, to wait for notifications on an event loop.
    int socket() const;
    bool is_open() const;
    // Ends the session (its session locks are released). Never throws.
    void close() noexcept;
    // A run-time setting (SHOW name).
    std::string setting(const std::string& name);

    struct Impl;  // src/store only (store/pq.hpp)
    Impl& impl() { return *impl_; }

private:
    std::unique_ptr<Impl> impl_;
};

// What a PostgreSQL exception means to a caller that decides on it.
enum class DbError {
    not_database,       // not a PostgreSQL error
    failure,            // a statement or the server failed; the session may still be usable
    connection_lost,    // the session is gone (its session locks with it)
    commit_in_doubt,    // the connection broke during a commit: it may or may not have happened
};
DbError classify_db_error(const std::exception& e);
// failure, connection_lost or commit_in_doubt.
inline bool is_db_error(const std::exception& e) { return classify_db_error(e) != DbError::not_database; }

}  // namespace cdpsync::store
