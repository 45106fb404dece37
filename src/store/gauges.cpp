// Read-only figures for monitoring (the daemon's metrics), read after each run.
#include <pqxx/pqxx>

#include "store/pq.hpp"
#include "store/gauges.hpp"

namespace cdpsync::store {

OpenOpCounts Gauges::open_op_counts() {
    OpenOpCounts out;
    std::string states;
    for (const char* s : kOpenOpStates) {
        out.by_state[s] = 0;
        states += std::string(states.empty() ? "" : ", ") + "'" + s + "'";
    }
    pqxx::read_transaction tx(pq(conn_));
    for (const auto& row : tx.exec(sql("SELECT state, count(*) FROM @.op WHERE state IN (" + states + ") GROUP BY state")))
        out.by_state[row[0].as<std::string>()] = row[1].as<int64_t>();
    out.mirror_memberships = tx.exec1(sql("SELECT count(*) FROM @.remote_member"))[0].as<int64_t>();
    return out;
}

}  // namespace cdpsync::store
