// Groups phase: desired names -> CDP static group ids, creating what is missing.
#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "sync/steps.hpp"

namespace cdpsync::sync {
namespace {

// Among groups with exactly this name: the static one with the lowest id, else a smart one.
std::optional<cdp::Group> pick(const std::vector<cdp::Group>& candidates, const std::string& name) {
    std::optional<cdp::Group> best;
    for (const auto& g : candidates) {
        if (g.name != name) continue;
        if (!best) {
            best = g;
            continue;
        }
        const bool better_type = g.type == cdp::kStaticGroup && best->type != cdp::kStaticGroup;
        const bool same_type_lower = g.type == best->type && g.id < best->id;
        if (better_type || same_type_lower) best = g;
    }
    return best;
}

const cdp::Folder* find_folder(const std::vector<cdp::Folder>& tree, const std::string& name) {
    for (const auto& f : tree) {
        if (f.name == name) return &f;
        if (auto* c = find_folder(f.children, name)) return c;
    }
    return nullptr;
}

}  // namespace

net::awaitable<GroupsResult> Steps::resolve_groups(bool full, bool dry_run) {
    GroupsResult out;
    const auto desired = store.desired_groups();
    auto gmap = store.group_map();

    std::map<std::string, std::vector<cdp::Group>> listed;
    if (full && !desired.empty()) {
        // Every co_await argument is a named local: GCC 12 miscompiles temporaries that live
        // across a co_await.
        std::string everything;
        std::optional<int64_t> any_folder;
        auto all = co_await api.query_all_groups(std::move(everything), std::move(any_folder));
        if (!all.ok()) {
            out.fatal = "listing the CDP's groups failed: " + all.error->describe();
            co_return out;
        }
        for (auto& g : *all.value) listed[g.name].push_back(std::move(g));
    }

    std::optional<std::vector<cdp::Folder>> tree;
    std::map<std::string, int64_t> folder_ids;
    int64_t placeholder = 0;
    // The folder id for a new group; nullopt = the root. Errors go to `problem`.
    auto folder_for = [&](const std::string& name, std::string& problem) -> net::awaitable<std::optional<int64_t>> {
        if (name.empty()) co_return std::nullopt;
        if (auto it = folder_ids.find(name); it != folder_ids.end()) co_return it->second;
        if (!tree) {
            auto t = co_await api.folder_tree();
            if (!t.ok()) {
                problem = "reading the folder tree failed: " + t.error->describe();
                co_return std::nullopt;
            }
            tree = std::move(*t.value);
        }
        if (auto* f = find_folder(*tree, name)) co_return folder_ids[name] = f->id;
        if (dry_run) {
            out.folders_to_create.push_back(name);
            co_return folder_ids[name] = --placeholder;
        }
        std::string folder_name = name, parent;
        auto created = co_await api.add_folder(std::move(folder_name), std::move(parent));
        if (!created.ok()) {
            problem = "creating folder '" + name + "' failed: " + created.error->describe();
            co_return std::nullopt;
        }
        log.info("created folder '{}' (id {})", name, *created.value);
        co_return folder_ids[name] = *created.value;
    };

    for (const auto& d : desired) {
        const auto known = gmap.find(d.name);
        const store::GroupMapping* mapped = known == gmap.end() ? nullptr : &known->second;
        std::optional<cdp::Group> remote;
        if (full) {
            if (auto it = listed.find(d.name); it != listed.end()) remote = pick(it->second, d.name);
        } else if (mapped && mapped->group_id && mapped->type == cdp::kStaticGroup && mapped->error.empty()) {
            cdp::Group g;
            g.id = *mapped->group_id;
            g.name = d.name;
            g.description = mapped->description.value_or("");
            g.folder_id = mapped->folder_id;
            remote = g;
        } else {
            std::string key = d.name;
            std::optional<int64_t> any_folder;
            auto found = co_await api.query_all_groups(std::move(key), std::move(any_folder));
            if (!found.ok()) {
                out.errors.push_back({d.name, "looking the group up failed: " + found.error->describe()});
                continue;
            }
            remote = pick(*found.value, d.name);
        }

        if (remote && remote->type != cdp::kStaticGroup) {
            out.errors.push_back({d.name, "the name belongs to a smart group (id " + std::to_string(remote->id) +
                                              "); smart groups are never written"});
            if (!dry_run || mapped)
                store.save_group({d.name, remote->id, remote->type, remote->description, remote->folder_id, false,
                                  false, "smart group"});
            continue;
        }

        // The name now points somewhere else than the mirror knows (deleted, recreated).
        if (mapped && mapped->group_id && (!remote || remote->id != *mapped->group_id) && !dry_run)
            store.reset_group_mirror(*mapped->group_id, false);

        if (!remote && d.retained) {
            // Kept managed only to empty it, and it is gone from the CDP: nothing to do.
            if (!dry_run && mapped && mapped->group_id) store.forget_group(d.name, *mapped->group_id);
            continue;
        }
        if (!remote) {
            std::string problem;
            const std::string folder = d.folder.value_or(cfg.cdp.folder);
            auto folder_id = co_await folder_for(folder, problem);
            if (!problem.empty()) {
                out.errors.push_back({d.name, problem});
                continue;
            }
            if (dry_run) {
                out.to_create.push_back(d.name);
                out.managed.push_back({d.name, --placeholder});
                continue;
            }
            cdp::CreateGroup request{d.name, d.description.value_or(""), folder_id};
            auto created = co_await api.create_group(std::move(request));
            if (!created.ok()) {
                out.errors.push_back({d.name, "creating the group failed: " + created.error->describe()});
                continue;
            }
            const int64_t id = *created.value;
            log.info("created static group '{}' (id {})", d.name, id);
            store.save_group({d.name, id, cdp::kStaticGroup, d.description.value_or(""), folder_id, true, false, ""});
            store.reset_group_mirror(id, true);  // new and empty: the mirror is exact
            ++out.created;
            out.managed.push_back({d.name, id});
            continue;
        }

        std::optional<std::string> description = remote->description;
        if (d.description && *d.description != remote->description) {
            if (dry_run) {
                out.description_updates.push_back(d.name);
            } else {
                cdp::UpdateGroup u;
                u.id = remote->id;
                u.name = d.name;
                u.description = *d.description;
                u.folder_id = remote->folder_id;
                auto updated = co_await api.update_group(std::move(u));
                if (updated.ok()) {
                    description = *d.description;
                    log.info("group '{}' (id {}): description updated", d.name, remote->id);
                } else {
                    out.errors.push_back({d.name, "updating the description failed: " + updated.error->describe()});
                }
            }
        }
        const bool changed = !mapped || mapped->group_id != remote->id || mapped->type != cdp::kStaticGroup ||
                             mapped->description != description || mapped->folder_id != remote->folder_id ||
                             !mapped->error.empty();
        if (changed)
            store.save_group({d.name, remote->id, cdp::kStaticGroup, description, remote->folder_id,
                              mapped && mapped->created_by_us && mapped->group_id == remote->id, false, ""});
        const bool snapshotted = mapped && mapped->group_id == remote->id && mapped->snapshotted;
        out.managed.push_back({d.name, remote->id});
        out.existing.push_back({d.name, remote->id});
        if (!snapshotted) out.unsnapshotted.push_back({d.name, remote->id});
    }
    co_return out;
}

std::vector<store::GroupMapping> Steps::prune_candidates(const std::vector<store::DesiredGroup>& desired) {
    std::set<std::string> named;
    for (const auto& d : desired) named.insert(d.name);
    std::vector<store::GroupMapping> out;
    for (const auto& [name, g] : store.group_map())
        if (g.created_by_us && g.group_id && *g.group_id > 0 && g.type == cdp::kStaticGroup && !named.count(name))
            out.push_back(g);
    return out;
}

net::awaitable<PruneResult> Steps::prune(std::vector<store::GroupMapping> groups) {
    PruneResult out;
    for (const auto& g : groups) {
        const int64_t id = *g.group_id;
        auto deleted = co_await api.delete_group(id);
        if (!deleted.ok()) {
            // Refused: maybe because it is gone already (deleted by hand, or by a run killed
            // after the call). Only a lookup tells.
            std::string key = g.name;
            std::optional<int64_t> any_folder;
            auto found = co_await api.query_all_groups(std::move(key), std::move(any_folder));
            const bool gone = found.ok() && std::none_of(found.value->begin(), found.value->end(),
                                                         [id](const cdp::Group& r) { return r.id == id; });
            if (!gone) {
                out.errors.push_back({g.name, "deleting the group (id " + std::to_string(id) +
                                                  ", sync.prune_groups) failed: " + deleted.error->describe()});
                continue;
            }
        }
        log.info("deleted group '{}' (id {}): the database no longer names it (sync.prune_groups)", g.name, id);
        store.forget_group(g.name, id);
        out.deleted.push_back(g.name);
    }
    co_return out;
}

}  // namespace cdpsync::sync
