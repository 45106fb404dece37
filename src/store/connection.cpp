#include "store/connection.hpp"

#include "store/pq.hpp"

namespace cdpsync::store {

std::string with_keepalives(const std::string& dsn) {
    if (dsn.find("keepalives") != std::string::npos) return dsn;  // the user's choice
    const bool uri = dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0;
    if (!uri) return dsn + (dsn.empty() ? "" : " ") + "keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3";
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") +
           "keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_count=3";
}

Connection::Connection(const std::string& dsn, std::chrono::seconds statement_timeout,
                       const std::string& application_name)
    : impl_(std::make_unique<Impl>()) {
    impl_->conn = std::make_unique<pqxx::connection>(with_keepalives(dsn));
    auto& conn = *impl_->conn;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn.inhibit_reactivation(true);
#pragma GCC diagnostic pop
    // Only where neither the DSN's options nor the role/database settings chose one.
    pqxx::nontransaction tx(conn);
    tx.exec_params("SELECT set_config('statement_timeout', $1, false) WHERE current_setting('statement_timeout') = '0'",
                   std::to_string(statement_timeout.count()) + "s");
    if (!application_name.empty())
        tx.exec_params("SELECT set_config('application_name', $1, false)", application_name);
}

Connection::~Connection() { close(); }

int Connection::socket() const { return impl_->conn->sock(); }

bool Connection::is_open() const { return impl_->conn && impl_->conn->is_open(); }

void Connection::close() noexcept {
    try {
        if (impl_ && impl_->conn) impl_->conn->disconnect();
    } catch (...) {
    }
}

std::string Connection::setting(const std::string& name) {
    pqxx::nontransaction tx(*impl_->conn);
    return tx.exec_params1("SELECT current_setting($1)", name)[0].as<std::string>();
}

DbError classify_db_error(const std::exception& e) {
    if (dynamic_cast<const pqxx::in_doubt_error*>(&e)) return DbError::commit_in_doubt;
    if (dynamic_cast<const pqxx::broken_connection*>(&e)) return DbError::connection_lost;
    if (dynamic_cast<const pqxx::failure*>(&e)) return DbError::failure;
    return DbError::not_database;
}

}  // namespace cdpsync::store
