// Folder paths for the groups phase: "Marketing/VIP" is the folder VIP under the root folder
// Marketing. Each level is found by name under its parent (queryTreeFormList) or created
// with group/add and `parentCode`, so folders of the same name under different parents are
// told apart. A create that failed ambiguously is looked up in a fresh tree before it is
// sent again.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>  // before boost/asio/awaitable.hpp (GCC 12)
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "cdp/api.hpp"
#include "http/wakeup.hpp"

namespace cdpsync::sync {

namespace net = boost::asio;

// A create that failed so may still have been applied (transient, or a reply that could not
// be read): it is looked up before it is sent again. Shared with the groups phase.
bool may_have_been_applied(const cdp::CallError& e);

// "A / B/" -> {"A", "B"}: levels trimmed (text::trim), empty levels dropped.
std::vector<std::string> split_folder_path(const std::string& path);

struct FolderLookup {
    std::optional<int64_t> id;  // nullopt = the root (no folder); negative = one a dry run would create
    std::string error;          // "" when resolved
};

class FolderPaths {
public:
    FolderPaths(cdp::Api& api, spdlog::logger& log, bool dry_run) : api_(api), log_(log), dry_run_(dry_run) {}

    // The folder at `path`, creating missing levels (a dry run records them instead).
    net::awaitable<FolderLookup> resolve(const std::string& path);
    // Dry run: the paths a run would create, each level once, parents first.
    const std::vector<std::string>& to_create() const { return to_create_; }

private:
    struct Walk {
        size_t matched = 0;                 // levels found from the root
        const cdp::Folder* deepest = nullptr;
    };
    net::awaitable<FolderLookup> resolve_alone(const std::string& path);
    Walk walk(const std::vector<std::string>& levels) const;
    net::awaitable<std::string> load_tree();  // "" or the error
    net::awaitable<FolderLookup> create_levels(const std::string& path, const std::vector<std::string>& levels);
    FolderLookup plan_levels(const std::vector<std::string>& levels, const Walk& found);

    cdp::Api& api_;
    spdlog::logger& log_;
    bool dry_run_;
    std::optional<std::vector<cdp::Folder>> tree_;
    std::map<std::string, FolderLookup> resolved_;
    std::vector<std::string> to_create_;
    int64_t placeholder_ = 0;
    bool busy_ = false;                  // a resolve is under way
    std::optional<http::Wakeup> turn_;   // when it ends: the next one looks again
};

}  // namespace cdpsync::sync
