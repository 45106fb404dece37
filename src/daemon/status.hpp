// What `cdp-sync status` shows, read from PostgreSQL only (it works whether or not a daemon
// runs, and from any host): the leader and its phase, the last runs, the time since the last
// successful one, open ops with their most common errors, queued resync requests.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "config/config.hpp"

namespace cdpsync::daemon {

// Throws when PostgreSQL cannot be reached.
nlohmann::json collect_status(const config::Config& config, int runs = 10);
std::string status_text(const nlohmann::json& status);
// `cdp-sync retry-failed`: clears the backoff waits and permanent marks of every failed op so
// the next run sends them. Returns how many ops were cleared. Throws when PostgreSQL cannot
// be reached.
int64_t retry_failed_now(const config::Config& config);

}  // namespace cdpsync::daemon
