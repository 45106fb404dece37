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

}  // namespace cdpsync::daemon
