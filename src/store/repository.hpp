// What every repository of the cdp_sync schema holds: the session it speaks on and the
// schema's name (validated; quoted once). A repository is a small class over one table or
// one concern; several share one Connection when they share its session (temp tables, the
// apply lock): see store/session.hpp.
#pragma once

#include <string>

#include "store/connection.hpp"

namespace cdpsync::store {

class Repository {
public:
    // Throws std::invalid_argument when `schema` is not a plain identifier.
    Repository(Connection& conn, const std::string& schema);

    const std::string& schema() const { return schema_; }
    // `tmpl` with every "@." replaced by the quoted schema and a dot.
    std::string sql(const std::string& tmpl) const;

protected:
    Connection& conn_;
    std::string schema_;
    std::string quoted_schema_;
};

}  // namespace cdpsync::store
