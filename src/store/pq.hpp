// Internal to src/store: the libpqxx connection behind store::Connection. Never included
// outside src/store.
#pragma once

#include <memory>

#include <pqxx/pqxx>

#include "store/connection.hpp"

namespace cdpsync::store {

struct Connection::Impl {
    std::unique_ptr<pqxx::connection> conn;
};

inline pqxx::connection& pq(Connection& c) { return *c.impl().conn; }

}  // namespace cdpsync::store
