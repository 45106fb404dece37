// What cdp-sync learned about the CDP and keeps across runs (the one-row cdp_state table):
// the circuit breaker over membership writes and the group-list cap learned from refusals.
#pragma once

#include <optional>
#include <string>

#include "store/repository.hpp"

namespace cdpsync::store {

// The circuit breaker over membership writes (shared/DESIGN.md: an outage is many ops in a
// row failing the same way): open stops the apply; the next run probes with one op.
enum class Breaker { closed, open, half_open };
const char* to_string(Breaker b);

struct CdpState {
    Breaker breaker = Breaker::closed;
    std::string breaker_reason;
    std::optional<int> max_groups_per_call;  // learned from refusals
};

class CdpMemory : public Repository {
public:
    using Repository::Repository;

    CdpState cdp_state();
    // True when the state changed (the caller logs it once).
    bool set_breaker(Breaker b, const std::string& reason);
    // Stores `cap` when no smaller one is known.
    void learn_group_cap(int cap);
};

}  // namespace cdpsync::store
