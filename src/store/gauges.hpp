// Read-only figures for monitoring (the daemon's metrics), read after each run.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "store/repository.hpp"

namespace cdpsync::store {

// Journal ops by state, for monitoring. A state listed in kOpenOpStates is counted (0 when
// no op is in it): a new state is one more entry there.
inline constexpr const char* kOpenOpStates[] = {"pending", "backoff", "failed", "permanent"};
struct OpenOpCounts {
    std::map<std::string, int64_t> by_state;  // every kOpenOpStates entry
    int64_t mirror_memberships = 0;           // rows of the mirror (remote_member)
};

class Gauges : public Repository {
public:
    using Repository::Repository;

    // Open journal ops of every run by state, and the mirror's size.
    OpenOpCounts open_op_counts();
};

}  // namespace cdpsync::store
