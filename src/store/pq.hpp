// Internal to src/store: the libpqxx connection behind store::Connection. Never included
// outside src/store.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "store/connection.hpp"

namespace cdpsync::store {

struct Connection::Impl {
    std::unique_ptr<pqxx::connection> conn;
};

inline pqxx::connection& pq(Connection& c) { return *c.impl().conn; }

// The elements of a one-dimensional array as libpqxx's array_parser reads them (NULLs left
// out): every array this store reads goes through here.
inline std::vector<std::string> array_elements(pqxx::array_parser parser) {
    std::vector<std::string> out;
    for (auto [kind, value] = parser.get_next(); kind != pqxx::array_parser::done; std::tie(kind, value) = parser.get_next())
        if (kind == pqxx::array_parser::string_value) out.push_back(std::move(value));
    return out;
}

}  // namespace cdpsync::store
