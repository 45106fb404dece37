// Folder paths: resolve each level under its parent, create what is missing.
#include "sync/folders.hpp"

#include <boost/asio/this_coro.hpp>

#include <algorithm>

#include "config/text.hpp"

namespace cdpsync::sync {
namespace {

// Among the folders named `name` at this level, the lowest id (namesakes under one parent).
const cdp::Folder* child_named(const std::vector<cdp::Folder>& level, const std::string& name) {
    const cdp::Folder* best = nullptr;
    for (const auto& f : level)
        if (f.name == name && (!best || f.id < best->id)) best = &f;
    return best;
}

std::string join(const std::vector<std::string>& levels, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += (i ? "/" : "") + levels[i];
    return out;
}


}  // namespace

bool may_have_been_applied(const cdp::CallError& e) { return e.transient() || e.kind == cdp::CallError::Kind::malformed; }

std::vector<std::string> split_folder_path(const std::string& path) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= path.size()) {
        const auto slash = std::min(path.find('/', start), path.size());
        if (auto level = text::trim(path.substr(start, slash - start)); !level.empty()) out.push_back(std::move(level));
        start = slash + 1;
    }
    return out;
}

FolderPaths::Walk FolderPaths::walk(const std::vector<std::string>& levels) const {
    Walk w;
    const std::vector<cdp::Folder>* level = &*tree_;
    for (const auto& name : levels) {
        const cdp::Folder* f = child_named(*level, name);
        if (!f) break;
        w.deepest = f;
        ++w.matched;
        level = &f->children;
    }
    return w;
}

net::awaitable<std::string> FolderPaths::load_tree() {
    auto t = co_await api_.folder_tree();
    if (!t.has_value()) co_return "reading the folder tree failed: " + t.error().describe();
    tree_ = std::move(t.value());
    co_return "";
}

net::awaitable<FolderLookup> FolderPaths::resolve(const std::string& path) {
    // One at a time: groups are resolved concurrently, and two of them under one new folder
    // must not both create it; the second finds the first's answer in resolved_.
    if (!turn_) turn_.emplace(co_await net::this_coro::executor);
    while (busy_) co_await turn_->wait();
    busy_ = true;
    struct Release {
        FolderPaths& f;
        ~Release() {
            f.busy_ = false;
            f.turn_->notify_all();
        }
    } release{*this};
    co_return co_await resolve_alone(path);
}

net::awaitable<FolderLookup> FolderPaths::resolve_alone(const std::string& path) {
    const auto levels = split_folder_path(path);
    if (levels.empty()) co_return FolderLookup{};
    const std::string key = join(levels, levels.size());
    if (auto it = resolved_.find(key); it != resolved_.end()) co_return it->second;
    if (!tree_) {
        if (auto problem = co_await load_tree(); !problem.empty()) co_return FolderLookup{std::nullopt, problem};
    }
    const Walk found = walk(levels);
    FolderLookup out;
    if (found.matched == levels.size()) out.id = found.deepest->id;
    else if (dry_run_) out = plan_levels(levels, found);
    else out = co_await create_levels(key, levels);
    if (out.error.empty()) resolved_[key] = out;
    co_return out;
}

FolderLookup FolderPaths::plan_levels(const std::vector<std::string>& levels, const Walk& found) {
    for (size_t n = found.matched + 1; n <= levels.size(); ++n) {
        auto prefix = join(levels, n);
        if (std::find(to_create_.begin(), to_create_.end(), prefix) == to_create_.end())
            to_create_.push_back(std::move(prefix));
    }
    return FolderLookup{--placeholder_, ""};
}

// One level at a time, re-reading the tree after each create: the next level needs the new
// folder's code, and a create that failed ambiguously may have been applied.
net::awaitable<FolderLookup> FolderPaths::create_levels(const std::string& path, const std::vector<std::string>& levels) {
    int creates_left = 2 * static_cast<int>(levels.size());
    for (Walk w = walk(levels); w.matched < levels.size(); w = walk(levels)) {
        if (creates_left-- == 0) co_return FolderLookup{std::nullopt, "folder '" + path + "' is still missing after creating it"};
        std::string name = levels[w.matched];
        std::string parent = w.deepest ? w.deepest->code : "";
        if (w.deepest && parent.empty())
            co_return FolderLookup{std::nullopt, "folder '" + join(levels, w.matched) + "' has no code to nest under"};
        auto created = co_await api_.add_folder(std::move(name), std::move(parent));
        const std::string level = join(levels, w.matched + 1);
        if (created.has_value()) {
            log_.info("created folder '{}' (id {})", level, created.value());
        } else if (may_have_been_applied(created.error())) {
            log_.warn("creating folder '{}' may have been applied ({}): reading the tree before creating again", level,
                      created.error().describe());
        } else {
            co_return FolderLookup{std::nullopt, "creating folder '" + level + "' failed: " + created.error().describe()};
        }
        if (auto problem = co_await load_tree(); !problem.empty()) co_return FolderLookup{std::nullopt, problem};
    }
    co_return FolderLookup{walk(levels).deepest->id, ""};
}

}  // namespace cdpsync::sync
