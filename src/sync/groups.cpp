// Groups phase: desired names -> CDP static group ids, creating what is missing.
//
// Rules (shared/DESIGN.md): names are not unique and a create that failed ambiguously may
// have been applied, so a create is preceded by an exact-name lookup; a mapping is never
// switched to a namesake; a mapped group missing from a listing (or flagged by a write the
// CDP refused as if it did not exist) is confirmed gone by a direct read before anything is
// created; a group whose type is not static is never written.
#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "sync/folders.hpp"
#include "sync/steps.hpp"
#include "sync/workers.hpp"

namespace cdpsync::sync {
namespace {

// A refusal that says the group does not exist (the wording is not documented).
bool says_missing(const cdp::CallError& e) {
    if (e.kind != cdp::CallError::Kind::cdp_code) return false;
    for (const char* word : {"不存在", "not exist", "not found"})
        if (e.msg.find(word) != std::string::npos) return true;
    return false;
}


bool has_id(const std::vector<cdp::Group>& groups, int64_t id) {
    return std::any_of(groups.begin(), groups.end(), [id](const cdp::Group& g) { return g.id == id; });
}

std::string ids_of(const std::vector<cdp::Group>& groups) {
    std::string out;
    for (const auto& g : groups) out += (out.empty() ? "" : ", ") + std::to_string(g.id);
    return out;
}

// Why a group may not be written, or "" for a static group.
std::string type_problem(const cdp::Group& g) {
    if (g.type == cdp::kStaticGroup) return "";
    if (g.type == cdp::kSmartGroup)
        return "the name belongs to a smart group (id " + std::to_string(g.id) + "); smart groups are never written";
    return "group id " + std::to_string(g.id) + " is listed with a missing or unknown type (" + std::to_string(g.type) +
           "); it is never written";
}

struct Choice {
    std::optional<cdp::Group> group;
    std::string why;  // set when namesakes made this a choice (for the log)
};

// The mapped group when it is among the namesakes; else the static one with members, then
// the lowest id; else (no static one) the lowest id, which the caller refuses to write.
Choice choose(std::vector<cdp::Group> namesakes, std::optional<int64_t> mapped_id) {
    Choice c;
    if (namesakes.empty()) return c;
    std::vector<cdp::Group> statics;
    for (const auto& g : namesakes)
        if (g.type == cdp::kStaticGroup) statics.push_back(g);
    const std::string listed = " (ids " + ids_of(namesakes) + ")";
    if (mapped_id) {
        for (const auto& g : namesakes)
            if (g.id == *mapped_id) c.group = g;
        if (c.group && namesakes.size() > 1) c.why = "several groups share the name" + listed + "; the mapped id is kept";
        if (c.group) return c;
    }
    auto& pool = statics.empty() ? namesakes : statics;
    std::sort(pool.begin(), pool.end(), [](const cdp::Group& a, const cdp::Group& b) {
        return std::make_pair(a.customer_total == 0, a.id) < std::make_pair(b.customer_total == 0, b.id);
    });
    c.group = pool.front();
    if (statics.size() > 1)
        c.why = "several static groups share the name" + listed + "; chose id " + std::to_string(c.group->id) +
                (c.group->customer_total > 0 ? ", the first with members" : ", the lowest id (none has members)");
    return c;
}

cdp::Group from_mapping(const store::GroupMapping& m) {
    cdp::Group g;
    g.id = *m.group_id;
    g.name = m.name;
    g.description = m.description.value_or("");
    g.folder_id = m.folder_id;
    g.type = m.type;
    return g;
}

enum class Presence { exists, gone, unknown };

struct Found {
    std::optional<cdp::Group> group;  // nullopt: no group of this name (create it)
    bool failed = false;              // an error was recorded: skip the group this run
};

class Resolver {
public:
    Resolver(Steps& st, bool full, bool dry_run, std::optional<GroupListing> listing)
        : st_(st), full_(full), dry_run_(dry_run), folders_(st.api, st.log, dry_run), listing_(std::move(listing)) {}

    net::awaitable<GroupsResult> run() {
        auto read_desired = [](store::Session& s) { return s.source.desired_groups(); };
        const auto desired = co_await st_.db.run(std::move(read_desired));
        auto read_map = [](store::Session& s) { return s.groups.group_map(); };
        gmap_ = co_await st_.db.run(std::move(read_map));
        if (full_ && !desired.empty()) {
            if (!listing_) listing_ = co_await st_.list_groups();
            if (!listing_->problem.empty()) {
                out_.fatal = Abort{Abort::Cause::groups_unlisted, listing_->problem};
                co_return std::move(out_);
            }
            take_listing();
        } else if (!full_) {
            co_await list_instead_of_lookups(desired);
        }
        co_await resolve_all(desired);
        out_.folders_to_create = folders_.to_create();
        co_return std::move(out_);
    }

private:
    // max_in_flight groups at once: the creates of a first run (one call each, and its
    // mapping saved) follow each other at the limit's pace instead of a round trip apart.
    // The results keep the desired groups' order.
    net::awaitable<void> resolve_all(const std::vector<store::DesiredGroup>& desired) {
        size_t next = 0;
        const std::function<net::awaitable<void>()> worker = [this, &desired, &next]() -> net::awaitable<void> {
            while (next < desired.size()) co_await resolve_one(desired[next++]);
        };
        // A dry run makes reads only, and its lists (groups to create, folders, moves) keep
        // the desired order as they are made: one at a time.
        const int at_once = dry_run_ ? 1 : std::max(1, st_.cfg.cdp.max_in_flight);
        const int width = static_cast<int>(std::min<size_t>(at_once, desired.size()));
        // A failure (PostgreSQL, a stop) ends the others at their next group.
        const std::function<void()> no_more = [&next, &desired] { next = desired.size(); };
        if (width > 0) co_await run_workers(width, worker, no_more);
        std::map<std::string, size_t> order;
        for (size_t i = 0; i < desired.size(); ++i) order.emplace(desired[i].name, i);
        const auto by_desired = [&order](const auto& a, const auto& b) { return order.at(a.name) < order.at(b.name); };
        for (auto* list : {&out_.managed, &out_.existing, &out_.unsnapshotted})
            std::stable_sort(list->begin(), list->end(), by_desired);
        std::stable_sort(out_.errors.begin(), out_.errors.end(), by_desired);
    }

    // One store call on the DB lane (never on the io_context's thread). The callers name
    // their lambdas: GCC 12 miscompiles temporaries that live across a co_await.
    template <class F>
    net::awaitable<void> on_lane(F work) {
        co_await st_.db.run(std::move(work));
    }

    net::awaitable<void> resolve_one(const store::DesiredGroup& d) {
        const store::GroupMapping* mapped = mapping_of(d.name);
        Found found = co_await find_remote(d, mapped);
        if (found.failed) co_return;
        if (!found.group) {
            co_await create_missing(d);
            co_return;
        }
        if (!co_await writable(d, *found.group)) co_return;
        co_await keep_existing(d, *found.group, mapped);
    }

    // ---- finding the group

    void take_listing() {
        for (const auto& g : listing_->groups) listed_[g.name].push_back(g);
        use_listing_ = true;
    }

    // An incremental run trusts a mapping that is static, without error or recheck.
    static bool trusted(const store::GroupMapping* mapped) {
        return mapped && mapped->group_id && *mapped->group_id > 0 && mapped->type == cdp::kStaticGroup &&
               mapped->error.empty() && !mapped->recheck;
    }

    const store::GroupMapping* mapping_of(const std::string& name) const {
        const auto it = gmap_.find(name);
        return it == gmap_.end() ? nullptr : &it->second;
    }

    // Whether this run's drift check will list the groups: some group it would compare.
    bool drift_will_list() const {
        if (dry_run_ || !st_.cfg.sync.drift_check) return false;
        return std::any_of(gmap_.begin(), gmap_.end(), [](const auto& entry) {
            return trusted(&entry.second) && entry.second.snapshotted;
        });
    }

    // An incremental run looks each new or rechecked name up, one simpleQuery each. One
    // listing serves them all when it takes fewer calls (its first page's total tells), and
    // the drift check then reuses it instead of listing again.
    net::awaitable<void> list_instead_of_lookups(const std::vector<store::DesiredGroup>& desired) {
        const auto lookups = std::count_if(desired.begin(), desired.end(), [this](const store::DesiredGroup& d) {
            return !trusted(mapping_of(d.name));
        });
        const bool drift_lists = drift_will_list();
        if (lookups == 0 || (lookups == 1 && !drift_lists)) co_return;
        std::string everything;
        std::optional<int64_t> any_folder;
        const int64_t budget = drift_lists ? 0 : static_cast<int64_t>(lookups);  // 0: the drift check lists anyway
        auto listed = co_await st_.api.query_groups_within(std::move(everything), std::move(any_folder), budget);
        if (!listed.has_value()) {
            st_.log.warn("listing the groups failed ({}): each group name is looked up instead",
                         listed.error().describe());
            co_return;
        }
        if (!listed.value()) co_return;  // more pages than names to look up
        const bool complete = listed.value()->complete();
        listing_ = GroupListing{std::move(listed.value()->groups), "", complete};
        take_listing();
        out_.listing = listing_;
    }

    // The groups named exactly `name`: from this run's listing, else (or when the listing
    // counted more groups than it gave) a simpleQuery search. An empty answer (also
    // `data: null`) means there is none.
    net::awaitable<std::optional<std::vector<cdp::Group>>> namesakes(const std::string& name, bool fresh = false) {
        if (use_listing_ && !fresh) {
            auto it = listed_.find(name);
            if (it != listed_.end()) co_return it->second;
            if (listing_->complete) co_return std::vector<cdp::Group>{};
            // The listing came up short of its total: the name may have moved between its
            // pages. Searched before anything is created under it.
        }
        std::string key = name;
        std::optional<int64_t> any_folder;
        auto found = co_await st_.api.query_all_groups(std::move(key), std::move(any_folder));
        if (!found.has_value()) {
            error(name, "looking the group up failed: " + found.error().describe());
            co_return std::nullopt;
        }
        std::erase_if(found.value(), [&](const cdp::Group& g) { return g.name != name; });
        co_return std::move(found.value());
    }

    net::awaitable<Found> find_remote(const store::DesiredGroup& d, const store::GroupMapping*& mapped) {
        const bool mapped_known = mapped && mapped->group_id && *mapped->group_id > 0;
        if (!full_ && trusted(mapped)) co_return Found{from_mapping(*mapped), false};
        if (mapped_known && (mapped->recheck || full_)) {
            auto listed = co_await namesakes(d.name);
            if (!listed) co_return Found{std::nullopt, true};
            const int64_t id = *mapped->group_id;
            if (!has_id(*listed, id)) {  // a recheck the search answers needs no direct read
                auto confirmed = co_await confirm(d, mapped);
                if (confirmed.failed || confirmed.group) co_return confirmed;
                listed = co_await namesakes(d.name);  // gone; the mapping is forgotten
                if (!listed) co_return Found{std::nullopt, true};
            }
            co_return pick(d.name, std::move(*listed), mapped);
        }
        auto listed = co_await namesakes(d.name);
        if (!listed) co_return Found{std::nullopt, true};
        co_return pick(d.name, std::move(*listed), mapped);
    }

    Found pick(const std::string& name, std::vector<cdp::Group> listed, const store::GroupMapping* mapped) {
        std::optional<int64_t> mapped_id;
        if (mapped && mapped->group_id && *mapped->group_id > 0) mapped_id = mapped->group_id;
        Choice c = choose(std::move(listed), mapped_id);
        if (!c.why.empty()) st_.log.warn("group '{}': {}", name, c.why);
        return Found{std::move(c.group), false};
    }

    // The mapped group was not listed under its name, or a write said it does not exist.
    net::awaitable<Found> confirm(const store::DesiredGroup& d, const store::GroupMapping*& mapped) {
        const int64_t id = *mapped->group_id;
        const Presence p = co_await presence(d.name, id);
        if (p == Presence::unknown) co_return Found{std::nullopt, true};
        if (p == Presence::exists) {
            if (!mapped->recheck)
                st_.log.warn("group '{}' (id {}) is not listed under its name but still exists: the mapping is kept",
                             d.name, id);
            co_return Found{from_mapping(*mapped), false};
        }
        st_.log.warn("group '{}' (id {}) no longer exists in the CDP (deleted by hand?): {}", d.name, id,
                     d.retained ? "forgetting it" : "it is created again and refilled");
        if (!dry_run_) {
            auto forget = [name = d.name, id](store::Session& s) { s.groups.forget_group(name, id); };
            co_await on_lane(std::move(forget));
        }
        gmap_.erase(d.name);
        mapped = nullptr;
        co_return Found{};
    }

    // A direct read of the group; an empty page is ambiguous (a CDP may answer so for a
    // deleted group too), so then the name decides.
    net::awaitable<Presence> presence(const std::string& name, int64_t id) {
        auto page = co_await st_.api.members_page(id, 1, 1);
        if (!page.has_value() && says_missing(page.error())) co_return Presence::gone;
        if (!page.has_value()) {
            error(name, "confirming group id " + std::to_string(id) + " failed: " + page.error().describe());
            co_return Presence::unknown;
        }
        if (page.value().total > 0 || !page.value().records.empty()) co_return Presence::exists;
        auto listed = co_await namesakes(name, true);
        if (!listed) co_return Presence::unknown;
        co_return has_id(*listed, id) ? Presence::exists : Presence::gone;
    }

    net::awaitable<bool> writable(const store::DesiredGroup& d, const cdp::Group& remote) {
        const std::string problem = type_problem(remote);
        if (problem.empty()) co_return true;
        error(d.name, problem);
        if (!dry_run_ || gmap_.count(d.name)) {
            store::GroupMapping m{d.name, remote.id, remote.type, remote.description, remote.folder_id, false, false,
                                  remote.type == cdp::kSmartGroup ? "smart group" : "unknown group type"};
            auto save = [m](store::Session& s) { s.groups.save_group(m); };
            co_await on_lane(std::move(save));
        }
        co_return false;
    }

    // ---- creating

    std::string folder_path(const store::DesiredGroup& d) const { return d.folder.value_or(st_.cfg.cdp.folder); }

    net::awaitable<void> create_missing(const store::DesiredGroup& d) {
        if (d.retained) co_return;  // kept managed only to empty it, and it is gone: nothing to do
        const std::string path = folder_path(d);
        FolderLookup folder = co_await folders_.resolve(path);
        if (!folder.error.empty()) {
            error(d.name, folder.error);
            co_return;
        }
        if (dry_run_) {
            out_.to_create.push_back(d.name);
            out_.managed.push_back({d.name, --placeholder_});
            co_return;
        }
        Found made = co_await create_once(d, folder.id);
        if (!made.group) co_return;
        if (!co_await writable(d, *made.group)) co_return;
        if (made.failed) {  // found after an ambiguous failure: read it like any existing group
            co_await keep_existing(d, *made.group, nullptr);
            co_return;
        }
        const int64_t id = made.group->id;
        st_.log.info("created static group '{}' (id {})", d.name, id);
        store::GroupMapping m{d.name, id, cdp::kStaticGroup, d.description.value_or(""), folder.id, true, false, ""};
        auto save = [m](store::Session& s) {
            s.groups.save_group(m);
            s.mirror.reset_group_mirror(*m.group_id, true);  // new and empty: the mirror is exact
        };
        co_await on_lane(std::move(save));
        ++out_.created;
        out_.managed.push_back({d.name, id});
    }

    // addSingleGroup, never repeated blindly: after an ambiguous failure the name is looked up
    // and an existing group is used (Found::failed set); created again only when it is not there.
    net::awaitable<Found> create_once(const store::DesiredGroup& d, std::optional<int64_t> folder_id) {
        std::string last;
        for (int attempt = 1; attempt <= 2; ++attempt) {
            cdp::CreateGroup request{d.name, d.description.value_or(""), folder_id};
            auto created = co_await st_.api.create_group(std::move(request));
            if (created.has_value())
                co_return Found{cdp::Group{created.value(), d.name, d.description.value_or(""), folder_id,
                                           cdp::kStaticGroup, 0},
                                false};
            last = created.error().describe();
            if (!may_have_been_applied(created.error())) break;
            st_.log.warn("creating group '{}' may have been applied ({}): looking the name up before creating again",
                         d.name, last);
            auto listed = co_await namesakes(d.name, true);
            if (!listed) co_return Found{};
            if (!listed->empty()) {
                Found f = pick(d.name, std::move(*listed), nullptr);
                st_.log.info("group '{}' exists (id {}): the create was applied", d.name, f.group->id);
                co_return Found{f.group, true};
            }
        }
        error(d.name, "creating the group failed: " + last);
        co_return Found{};
    }

    // ---- an existing group: description and folder kept as configured

    net::awaitable<void> keep_existing(const store::DesiredGroup& d, cdp::Group remote, const store::GroupMapping* mapped) {
        co_await update_if_needed(d, remote);
        const bool same_id = mapped && mapped->group_id == remote.id;
        if (mapped && mapped->group_id && !same_id && !dry_run_) {
            auto forget_mirror = [old = *mapped->group_id](store::Session& s) { s.mirror.reset_group_mirror(old, false); };
            co_await on_lane(std::move(forget_mirror));
        }
        const bool changed = !same_id || mapped->type != cdp::kStaticGroup || mapped->description != remote.description ||
                             mapped->folder_id != remote.folder_id || !mapped->error.empty() || mapped->recheck;
        if (changed) {
            store::GroupMapping m{d.name, remote.id, cdp::kStaticGroup, remote.description, remote.folder_id,
                                  same_id && mapped->created_by_us, false, ""};
            auto save = [m](store::Session& s) { s.groups.save_group(m); };
            co_await on_lane(std::move(save));
        }
        out_.managed.push_back({d.name, remote.id});
        out_.existing.push_back({d.name, remote.id});
        if (!(same_id && mapped->snapshotted)) out_.unsnapshotted.push_back({d.name, remote.id});
    }

    // One updateCustomerGroup for a new description and/or a move to the configured folder.
    // Moves are checked when the folder tree is read anyway: full resyncs and dry runs.
    net::awaitable<void> update_if_needed(const store::DesiredGroup& d, cdp::Group& remote) {
        const bool describe = d.description && *d.description != remote.description;
        std::optional<int64_t> folder_id = remote.folder_id;
        const std::string path = folder_path(d);
        if (!path.empty() && (full_ || dry_run_)) {
            FolderLookup folder = co_await folders_.resolve(path);
            if (!folder.error.empty()) error(d.name, folder.error);
            else folder_id = folder.id;
        }
        const bool move = folder_id != remote.folder_id;
        if (!describe && !move) co_return;
        if (dry_run_) {
            if (describe) out_.description_updates.push_back(d.name);
            if (move) out_.moves.push_back(d.name + " -> " + path);
            co_return;
        }
        cdp::UpdateGroup u{remote.id, d.name, describe ? *d.description : remote.description, folder_id, cdp::kStaticGroup};
        auto updated = co_await st_.api.update_group(std::move(u));
        if (!updated.has_value()) {
            error(d.name, "updating the group (description/folder) failed: " + updated.error().describe());
            co_return;
        }
        if (describe) st_.log.info("group '{}' (id {}): description updated", d.name, remote.id);
        if (move) st_.log.info("group '{}' (id {}): moved to folder '{}'", d.name, remote.id, path);
        if (describe) remote.description = *d.description;
        remote.folder_id = folder_id;
    }

    void error(const std::string& name, std::string why) { out_.errors.push_back({name, std::move(why)}); }

    Steps& st_;
    const bool full_;
    const bool dry_run_;
    FolderPaths folders_;
    GroupsResult out_;
    std::map<std::string, store::GroupMapping> gmap_;
    std::optional<GroupListing> listing_;
    std::map<std::string, std::vector<cdp::Group>> listed_;
    bool use_listing_ = false;  // names are found in listed_ (full runs; incremental when cheaper)
    int64_t placeholder_ = 0;
};

}  // namespace

net::awaitable<GroupsResult> Steps::resolve_groups(bool full, bool dry_run, std::optional<GroupListing> listing) {
    Resolver resolver(*this, full, dry_run, std::move(listing));
    co_return co_await resolver.run();
}

net::awaitable<GroupListing> Steps::list_groups() {
    // Every co_await argument is a named local: GCC 12 miscompiles temporaries that live
    // across a co_await.
    std::string everything;
    std::optional<int64_t> any_folder;
    const int64_t no_budget = 0;
    auto all = co_await api.query_groups_within(std::move(everything), std::move(any_folder), no_budget);
    if (!all.has_value()) co_return GroupListing{{}, "listing the CDP's groups failed: " + all.error().describe()};
    const bool complete = all.value()->complete();
    co_return GroupListing{std::move(all.value()->groups), "", complete};
}

std::vector<store::ManagedGroup> known_groups(const std::map<std::string, store::GroupMapping>& group_map,
                                              const GroupListing& listing,
                                              const std::vector<std::string>& only_groups) {
    std::map<int64_t, const cdp::Group*> listed;
    for (const auto& g : listing.groups) listed[g.id] = &g;
    const std::set<std::string> only(only_groups.begin(), only_groups.end());
    std::vector<store::ManagedGroup> out;
    for (const auto& [name, m] : group_map) {
        if (!m.group_id || *m.group_id <= 0 || m.type != cdp::kStaticGroup || !m.error.empty()) continue;
        if (!only.empty() && !only.count(name)) continue;
        const auto it = listed.find(*m.group_id);
        if (it == listed.end() || it->second->name != name || it->second->type != cdp::kStaticGroup) continue;
        out.push_back({name, *m.group_id});
    }
    return out;
}

std::vector<store::GroupMapping> Steps::prune_candidates(const std::vector<store::DesiredGroup>& desired) {
    std::set<std::string> named;
    for (const auto& d : desired) named.insert(d.name);
    std::vector<store::GroupMapping> out;
    for (const auto& [name, g] : store.groups.group_map())
        if (g.created_by_us && g.group_id && *g.group_id > 0 && g.type == cdp::kStaticGroup && !named.count(name))
            out.push_back(g);
    return out;
}

net::awaitable<PruneResult> Steps::prune(std::vector<store::GroupMapping> groups) {
    PruneResult out;
    for (const auto& g : groups) {
        const int64_t id = *g.group_id;
        auto deleted = co_await api.delete_group(id);
        if (!deleted.has_value()) {
            // Refused: maybe because it is gone already (deleted by hand, or by a run killed
            // after the call). Only a lookup tells.
            std::string key = g.name;
            std::optional<int64_t> any_folder;
            auto found = co_await api.query_all_groups(std::move(key), std::move(any_folder));
            const bool gone = found.has_value() && std::none_of(found.value().begin(), found.value().end(),
                                                         [id](const cdp::Group& r) { return r.id == id; });
            if (!gone) {
                out.errors.push_back({g.name, "deleting the group (id " + std::to_string(id) +
                                                  ", sync.prune_groups) failed: " + deleted.error().describe()});
                continue;
            }
        }
        log.info("deleted group '{}' (id {}): the database no longer names it (sync.prune_groups)", g.name, id);
        store.groups.forget_group(g.name, id);
        out.deleted.push_back(g.name);
    }
    co_return out;
}

}  // namespace cdpsync::sync
