#include "sim/state.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <random>
#include <stdexcept>

namespace cdpsync::sim {

namespace {

constexpr int64_t kFirstFolderId = 101;
constexpr int64_t kFirstGroupId = 10001;

// Members of one group: a sorted vector plus pending changes, merged on the next read.
// Invariants: `added` and `sorted` are disjoint; `removed` is a subset of `sorted`.
struct MemberSet {
    std::vector<int64_t> sorted;
    std::unordered_set<int64_t> added;
    std::unordered_set<int64_t> removed;

    size_t size() const { return sorted.size() + added.size() - removed.size(); }

    // Callers guarantee c is not a member (insert) or is a member (erase).
    void insert(int64_t c) {
        if (removed.erase(c) == 0) added.insert(c);
        maybe_compact();
    }
    void erase(int64_t c) {
        if (added.erase(c) == 0) removed.insert(c);
        maybe_compact();
    }
    void maybe_compact() {
        if (added.size() + removed.size() > 4096 + sorted.size() / 4) compact();
    }
    void compact() {
        if (added.empty() && removed.empty()) return;
        std::vector<int64_t> add(added.begin(), added.end());
        std::vector<int64_t> del(removed.begin(), removed.end());
        std::sort(add.begin(), add.end());
        std::sort(del.begin(), del.end());
        std::vector<int64_t> out;
        out.reserve(size());
        auto a = add.begin();
        auto d = del.begin();
        for (int64_t x : sorted) {
            while (a != add.end() && *a < x) out.push_back(*a++);
            while (d != del.end() && *d < x) ++d;
            if (d != del.end() && *d == x) continue;
            out.push_back(x);
        }
        out.insert(out.end(), a, add.end());
        sorted.swap(out);
        std::unordered_set<int64_t>().swap(added);
        std::unordered_set<int64_t>().swap(removed);
    }
    // Merges many new (not yet member) ids at once.
    void insert_bulk(std::vector<int64_t>& fresh) {
        compact();
        std::sort(fresh.begin(), fresh.end());
        fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
        if (!sorted.empty() && !fresh.empty() && fresh.front() > sorted.back()) {
            sorted.insert(sorted.end(), fresh.begin(), fresh.end());
            return;
        }
        std::vector<int64_t> out;
        out.reserve(sorted.size() + fresh.size());
        std::merge(sorted.begin(), sorted.end(), fresh.begin(), fresh.end(),
                   std::back_inserter(out));
        sorted.swap(out);
    }
};

struct GroupRec {
    int64_t id = 0;
    std::string name;
    std::string description;
    std::optional<int64_t> folder_id;
    int type = cdp::kStaticGroup;
    MemberSet members;
};

struct FolderRec {
    int64_t id = 0;
    std::string code;
    std::string name;
    std::string parent_code;
};

uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

const char* const kMsgNoCustomer = "客户不存在";
const char* const kMsgNoGroup = "群组不存在";
const char* const kMsgNoFolder = "分组不存在";

}  // namespace

struct State::Data {
    Quirks quirks;
    int64_t churned_reads = 0;                          // ReadQuirks::churn_reads spent
    int64_t next_foreign_customer = 8'000'000'000'000;  // customers "other parties" add
    std::map<int64_t, FolderRec> folders;
    std::map<int64_t, GroupRec> groups;
    std::unordered_map<int64_t, std::vector<int64_t>> customers;  // id -> group ids
    int64_t memberships = 0;
    int64_t next_folder_id = kFirstFolderId;
    int64_t next_group_id = kFirstGroupId;
    int64_t next_folder_code = 1;
    std::vector<WriteLogEntry> write_log;

    GroupRec* find_group(int64_t id) {
        auto it = groups.find(id);
        return it == groups.end() ? nullptr : &it->second;
    }
    // Why customerAddGroups / customerDeleteGroups must refuse (the whole call, before any
    // change), or nullopt when every group is a known static group and the customer exists.
    std::optional<std::string> refuse_membership_write(int64_t customer_id,
                                                      const std::vector<int64_t>& group_ids,
                                                      const char* smart_group_msg) {
        if (!customers.count(customer_id)) return kMsgNoCustomer;
        if (auto capped = refuse_over_cap(group_ids)) return capped;
        for (int64_t gid : group_ids) {
            const GroupRec* g = find_group(gid);
            if (!g) return kMsgNoGroup;
            if (g->type != cdp::kStaticGroup) return smart_group_msg;
        }
        return std::nullopt;
    }
    // customerAddGroups (adding) or customerDeleteGroups: all of it, or nothing with the refusal.
    Outcome<None> add_or_remove(int64_t customer_id, const std::vector<int64_t>& group_ids, bool adding) {
        const char* smart_group_msg = adding ? "智能群组不能手动添加客户" : "智能群组不能手动删除客户";
        if (auto refusal = refuse_membership_write(customer_id, group_ids, smart_group_msg))
            return Outcome<None>::failure(*refusal);
        if (auto refusal = refuse_applied(customer_id, group_ids, adding)) return Outcome<None>::failure(*refusal);
        for (int64_t gid : group_ids) {
            if (adding) add(customer_id, *find_group(gid));
            else remove(customer_id, *find_group(gid));
        }
        return {};
    }
    // Quirk write.max_groups_per_call.
    std::optional<std::string> refuse_over_cap(const std::vector<int64_t>& group_ids) const {
        const int cap = quirks.write.max_groups_per_call;
        if (cap > 0 && group_ids.size() > static_cast<size_t>(cap))
            return "customerGroupIdList最多" + std::to_string(cap) + "个";
        return std::nullopt;
    }
    // Quirk write.refuse_already_applied: an add of a held membership, a delete of one not held.
    std::optional<std::string> refuse_applied(int64_t customer_id, const std::vector<int64_t>& group_ids,
                                              bool adding) const {
        if (!quirks.write.refuse_already_applied) return std::nullopt;
        const auto& held = customers.at(customer_id);
        for (int64_t gid : group_ids) {
            const bool has = std::find(held.begin(), held.end(), gid) != held.end();
            if (adding && has) return "客户已在该群组中";
            if (!adding && !has) return "客户不在该群组中";
        }
        return std::nullopt;
    }
    FolderRec* find_folder(int64_t id) {
        auto it = folders.find(id);
        return it == folders.end() ? nullptr : &it->second;
    }
    const FolderRec* find_folder_by_code(const std::string& code) const {
        for (const auto& [id, f] : folders)
            if (f.code == code) return &f;
        return nullptr;
    }
    bool name_taken(const std::string& name, int64_t except_id) const {
        for (const auto& [id, g] : groups)
            if (g.name == name && id != except_id) return true;
        return false;
    }

    int64_t new_folder(const std::string& name, const std::string& parent_code) {
        FolderRec f;
        f.id = next_folder_id++;
        char code[32];
        std::snprintf(code, sizeof code, "F%04lld", static_cast<long long>(next_folder_code++));
        f.code = code;
        f.name = name;
        f.parent_code = parent_code;
        folders.emplace(f.id, std::move(f));
        return next_folder_id - 1;
    }
    int64_t new_group(const std::string& name, const std::string& description,
                      std::optional<int64_t> folder_id, int type) {
        GroupRec g;
        g.id = next_group_id++;
        g.name = name;
        g.description = description;
        g.folder_id = folder_id;
        g.type = type;
        int64_t id = g.id;
        groups.emplace(id, std::move(g));
        return id;
    }

    bool add(int64_t customer, GroupRec& g) {
        auto& list = customers[customer];
        if (std::find(list.begin(), list.end(), g.id) != list.end()) return false;
        list.push_back(g.id);
        g.members.insert(customer);
        ++memberships;
        return true;
    }
    bool remove(int64_t customer, GroupRec& g) {
        auto it = customers.find(customer);
        if (it == customers.end()) return false;
        auto& list = it->second;
        auto pos = std::find(list.begin(), list.end(), g.id);
        if (pos == list.end()) return false;
        list.erase(pos);
        g.members.erase(customer);
        --memberships;
        return true;
    }

    // ReadQuirks churn: other parties change the group while it is paged (before this read).
    void churn(GroupRec& g) {
        const ReadQuirks& q = quirks.read;
        if (q.churn_adds <= 0 && q.churn_removes <= 0) return;
        if (q.churn_reads >= 0 && churned_reads >= q.churn_reads) return;
        ++churned_reads;
        g.members.compact();
        for (int64_t i = 0; i < q.churn_removes && !g.members.sorted.empty(); ++i) {
            const int64_t lowest = g.members.sorted.front();
            remove(lowest, g);
            g.members.compact();
        }
        for (int64_t i = 0; i < q.churn_adds; ++i) {
            const int64_t customer = next_foreign_customer++;
            customers.try_emplace(customer);
            add(customer, g);
        }
    }

    cdp::Group to_group(GroupRec& g) const {
        cdp::Group out;
        out.id = g.id;
        out.name = g.name;
        out.description = g.description;
        out.folder_id = g.folder_id;
        out.type = g.type;
        out.customer_total = static_cast<int64_t>(g.members.size());
        return out;
    }
    cdp::Folder to_folder(const FolderRec& f) const {
        cdp::Folder out;
        out.id = f.id;
        out.code = f.code;
        out.name = f.name;
        out.parent_code = f.parent_code;
        return out;
    }

    // The folder and all folders below it.
    std::vector<int64_t> subtree(int64_t root) const {
        std::vector<int64_t> out{root};
        for (size_t i = 0; i < out.size(); ++i) {
            const std::string& code = folders.at(out[i]).code;
            for (const auto& [id, f] : folders)
                if (f.parent_code == code) out.push_back(id);
        }
        return out;
    }
};

State::State() : d_(std::make_unique<Data>()) {}
State::~State() = default;

// ---------------------------------------------------------------- seeding

int64_t State::add_folder(const std::string& name, const std::string& parent_code) {
    std::lock_guard lock(mutex_);
    if (!parent_code.empty() && !d_->find_folder_by_code(parent_code))
        throw std::invalid_argument("sim: unknown parent folder code " + parent_code);
    return d_->new_folder(name, parent_code);
}

int64_t State::add_group(const std::string& name, const std::string& description,
                         std::optional<int64_t> folder_id, int type) {
    std::lock_guard lock(mutex_);
    if (folder_id && !d_->find_folder(*folder_id))
        throw std::invalid_argument("sim: unknown folder id " + std::to_string(*folder_id));
    if (type != cdp::kStaticGroup && type != cdp::kSmartGroup)
        throw std::invalid_argument("sim: group type must be 1 or 2");
    return d_->new_group(name, description, folder_id, type);
}

void State::add_customers(int64_t first_id, int64_t count) {
    std::lock_guard lock(mutex_);
    d_->customers.reserve(d_->customers.size() + static_cast<size_t>(std::max<int64_t>(count, 0)));
    for (int64_t i = 0; i < count; ++i) d_->customers.try_emplace(first_id + i);
}

void State::ensure_customer(int64_t id) {
    std::lock_guard lock(mutex_);
    d_->customers.try_emplace(id);
}

bool State::add_membership(int64_t customer_id, int64_t group_id) {
    std::lock_guard lock(mutex_);
    GroupRec* g = d_->find_group(group_id);
    if (!g) throw std::invalid_argument("sim: unknown group id " + std::to_string(group_id));
    return d_->add(customer_id, *g);
}

bool State::remove_membership(int64_t customer_id, int64_t group_id) {
    std::lock_guard lock(mutex_);
    GroupRec* g = d_->find_group(group_id);
    if (!g) return false;
    return d_->remove(customer_id, *g);
}

int64_t State::add_memberships(const std::vector<std::pair<int64_t, int64_t>>& pairs) {
    std::lock_guard lock(mutex_);
    for (const auto& [c, gid] : pairs)
        if (!d_->find_group(gid))
            throw std::invalid_argument("sim: unknown group id " + std::to_string(gid));
    std::unordered_map<int64_t, std::vector<int64_t>> fresh;
    int64_t added = 0;
    for (const auto& [c, gid] : pairs) {
        auto& list = d_->customers[c];
        if (std::find(list.begin(), list.end(), gid) != list.end()) continue;
        list.push_back(gid);
        fresh[gid].push_back(c);
        ++added;
    }
    for (auto& [gid, ids] : fresh) d_->groups.at(gid).members.insert_bulk(ids);
    d_->memberships += added;
    return added;
}

GenerateResult State::generate(const GenerateSpec& spec) {
    if (spec.customers < 0 || spec.groups < 0 || spec.memberships < 0 || spec.smart_groups < 0)
        throw std::invalid_argument("sim: generate: negative count");
    if (spec.memberships > 0 && (spec.customers == 0 || spec.groups == 0))
        throw std::invalid_argument("sim: generate: memberships need customers and groups");
    if (spec.customers > 0 && spec.memberships > spec.customers * spec.groups)
        throw std::invalid_argument("sim: generate: more memberships than customers x groups");
    std::lock_guard lock(mutex_);
    if (spec.folder_id && !d_->find_folder(*spec.folder_id))
        throw std::invalid_argument("sim: generate: unknown folder id");
    auto& d = *d_;
    GenerateResult result;
    std::vector<GroupRec*> recs;
    for (int64_t i = 0; i < spec.groups; ++i) {
        int type = i < spec.smart_groups ? cdp::kSmartGroup : cdp::kStaticGroup;
        int64_t id = d.new_group("", "generated", spec.folder_id, type);
        GroupRec& g = d.groups.at(id);
        g.name = spec.group_name_prefix + std::to_string(id);
        result.group_ids.push_back(id);
        recs.push_back(&g);
    }
    d.customers.reserve(d.customers.size() + static_cast<size_t>(spec.customers));
    const int64_t per = spec.customers ? spec.memberships / spec.customers : 0;
    const int64_t extra = spec.customers ? spec.memberships % spec.customers : 0;
    const uint64_t ngroups = static_cast<uint64_t>(spec.groups);
    // Customer k takes `n` consecutive groups (mod G) from a random start: distinct, and
    // each group's members arrive in increasing id order, so they stay sorted. Two passes
    // with the same random sequence: count first to reserve exactly.
    auto walk = [&](auto&& visit) {
        std::mt19937_64 rng(spec.seed);
        for (int64_t k = 0; k < spec.customers; ++k) {
            int64_t n = per + (k < extra ? 1 : 0);
            uint64_t start = ngroups ? rng() % ngroups : 0;
            visit(k, n, start);
        }
    };
    if (ngroups > 0) {
        std::vector<size_t> counts(ngroups, 0);
        walk([&](int64_t, int64_t n, uint64_t start) {
            for (int64_t j = 0; j < n; ++j) ++counts[(start + static_cast<uint64_t>(j)) % ngroups];
        });
        for (uint64_t i = 0; i < ngroups; ++i) recs[i]->members.sorted.reserve(counts[i]);
    }
    walk([&](int64_t k, int64_t n, uint64_t start) {
        const int64_t cid = spec.first_customer_id + k;
        auto& list = d.customers[cid];
        list.reserve(list.size() + static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) {
            GroupRec* g = recs[(start + static_cast<uint64_t>(j)) % ngroups];
            list.push_back(g->id);
            g->members.sorted.push_back(cid);
        }
    });
    d.memberships += spec.memberships;
    result.customers = spec.customers;
    result.memberships = spec.memberships;
    return result;
}

void State::reset() {
    std::lock_guard lock(mutex_);
    Quirks kept = std::move(d_->quirks);  // like the faults, quirks outlive a data reset
    d_ = std::make_unique<Data>();
    d_->quirks = std::move(kept);
}

// ---------------------------------------------------------------- reading

std::vector<int64_t> State::members_of(int64_t group_id) {
    std::lock_guard lock(mutex_);
    GroupRec* g = d_->find_group(group_id);
    if (!g) return {};
    g->members.compact();
    return g->members.sorted;
}

std::vector<int64_t> State::groups_of(int64_t customer_id, int type) {
    std::lock_guard lock(mutex_);
    std::vector<int64_t> out;
    auto it = d_->customers.find(customer_id);
    if (it == d_->customers.end()) return out;
    for (int64_t gid : it->second)
        if (type == 0 || d_->groups.at(gid).type == type) out.push_back(gid);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<cdp::Group> State::find_groups_by_name(const std::string& name) {
    std::lock_guard lock(mutex_);
    std::vector<cdp::Group> out;
    for (auto& [id, g] : d_->groups)
        if (g.name == name) out.push_back(d_->to_group(g));
    return out;
}

std::optional<cdp::Group> State::group(int64_t id) {
    std::lock_guard lock(mutex_);
    GroupRec* g = d_->find_group(id);
    if (!g) return std::nullopt;
    return d_->to_group(*g);
}

std::vector<cdp::Group> State::groups() {
    std::lock_guard lock(mutex_);
    std::vector<cdp::Group> out;
    for (auto& [id, g] : d_->groups) out.push_back(d_->to_group(g));
    return out;
}

std::optional<cdp::Folder> State::folder(int64_t id) {
    std::lock_guard lock(mutex_);
    FolderRec* f = d_->find_folder(id);
    if (!f) return std::nullopt;
    return d_->to_folder(*f);
}

std::optional<cdp::Folder> State::find_folder_by_name(const std::string& name) {
    std::lock_guard lock(mutex_);
    for (const auto& [id, f] : d_->folders)
        if (f.name == name) return d_->to_folder(f);
    return std::nullopt;
}

bool State::has_customer(int64_t id) {
    std::lock_guard lock(mutex_);
    return d_->customers.count(id) > 0;
}

bool State::is_member(int64_t customer_id, int64_t group_id) {
    std::lock_guard lock(mutex_);
    auto it = d_->customers.find(customer_id);
    if (it == d_->customers.end()) return false;
    return std::find(it->second.begin(), it->second.end(), group_id) != it->second.end();
}

int64_t State::membership_count() {
    std::lock_guard lock(mutex_);
    return d_->memberships;
}

int64_t State::customer_count() {
    std::lock_guard lock(mutex_);
    return static_cast<int64_t>(d_->customers.size());
}

int64_t State::group_count() {
    std::lock_guard lock(mutex_);
    return static_cast<int64_t>(d_->groups.size());
}

json State::dump(bool include_members) {
    std::lock_guard lock(mutex_);
    json folders = json::array();
    for (const auto& [id, f] : d_->folders)
        folders.push_back(json{{"id", f.id}, {"code", f.code}, {"name", f.name},
                               {"parentCode", f.parent_code}});
    json groups = json::array();
    for (auto& [id, g] : d_->groups) {
        json j = cdp::to_json(d_->to_group(g));
        if (include_members) {
            g.members.compact();
            j["members"] = g.members.sorted;
        }
        groups.push_back(std::move(j));
    }
    return json{{"folders", std::move(folders)},
                {"groups", std::move(groups)},
                {"customers", d_->customers.size()},
                {"memberships", d_->memberships}};
}

json State::dump_group(int64_t group_id) {
    std::lock_guard lock(mutex_);
    GroupRec* g = d_->find_group(group_id);
    if (!g) return nullptr;
    g->members.compact();
    json j = cdp::to_json(d_->to_group(*g));
    j["members"] = g->members.sorted;
    return j;
}

// ---------------------------------------------------------------- API operations

Outcome<int64_t> State::create_folder(const std::string& name, const std::string& parent_code) {
    std::lock_guard lock(mutex_);
    if (name.empty()) return Outcome<int64_t>::failure("分组名称不能为空");
    if (!parent_code.empty() && !d_->find_folder_by_code(parent_code))
        return Outcome<int64_t>::failure("上级分组不存在");
    for (const auto& [id, f] : d_->folders)
        if (f.name == name && f.parent_code == parent_code)
            return Outcome<int64_t>::failure("分组名称已存在");
    return Outcome<int64_t>::success(d_->new_folder(name, parent_code));
}

Outcome<None> State::update_folder(int64_t id, const std::string& name) {
    std::lock_guard lock(mutex_);
    FolderRec* f = d_->find_folder(id);
    if (!f) return Outcome<None>::failure(kMsgNoFolder);
    if (name.empty()) return Outcome<None>::failure("分组名称不能为空");
    for (const auto& [oid, o] : d_->folders)
        if (oid != id && o.name == name && o.parent_code == f->parent_code)
            return Outcome<None>::failure("分组名称已存在");
    f->name = name;
    return {};
}

Outcome<None> State::delete_folder(int64_t id) {
    std::lock_guard lock(mutex_);
    if (!d_->find_folder(id)) return Outcome<None>::failure(kMsgNoFolder);
    auto tree = d_->subtree(id);
    std::unordered_set<int64_t> doomed(tree.begin(), tree.end());
    for (const auto& [gid, g] : d_->groups)
        if (g.folder_id && doomed.count(*g.folder_id) && g.members.size() > 0)
            return Outcome<None>::failure("分组中含有客户，不能删除");
    for (auto& [gid, g] : d_->groups)
        if (g.folder_id && doomed.count(*g.folder_id)) g.folder_id.reset();
    for (int64_t fid : tree) d_->folders.erase(fid);
    return {};
}

std::vector<cdp::Folder> State::folder_tree() {
    std::lock_guard lock(mutex_);
    std::map<std::string, std::vector<const FolderRec*>> by_parent;
    for (const auto& [id, f] : d_->folders) by_parent[f.parent_code].push_back(&f);
    auto build = [&](auto&& self, const std::string& parent) -> std::vector<cdp::Folder> {
        std::vector<cdp::Folder> out;
        auto it = by_parent.find(parent);
        if (it == by_parent.end()) return out;
        for (const FolderRec* f : it->second) {
            cdp::Folder node = d_->to_folder(*f);
            node.children = self(self, f->code);
            out.push_back(std::move(node));
        }
        return out;
    };
    return build(build, "");
}

Outcome<int64_t> State::create_group(const std::string& name, const std::string& description,
                                     std::optional<int64_t> folder_id, int type) {
    std::lock_guard lock(mutex_);
    if (type != cdp::kStaticGroup) return Outcome<int64_t>::failure("仅支持创建静态群组");
    if (name.empty()) return Outcome<int64_t>::failure("群组名称不能为空");
    if (folder_id && !d_->find_folder(*folder_id)) return Outcome<int64_t>::failure(kMsgNoFolder);
    if (!d_->quirks.groups.duplicate_names && d_->name_taken(name, 0))
        return Outcome<int64_t>::failure("群组名称已存在");
    return Outcome<int64_t>::success(d_->new_group(name, description, folder_id, type));
}

Outcome<None> State::update_group(int64_t id, const std::optional<std::string>& name,
                                  const std::optional<std::string>& description,
                                  std::optional<int64_t> folder_id, int type) {
    std::lock_guard lock(mutex_);
    GroupRec* g = d_->find_group(id);
    if (!g) return Outcome<None>::failure(kMsgNoGroup);
    if (type != g->type) return Outcome<None>::failure("群组类型不匹配");
    if (name && name->empty()) return Outcome<None>::failure("群组名称不能为空");
    if (name && !d_->quirks.groups.duplicate_names && d_->name_taken(*name, id))
        return Outcome<None>::failure("群组名称已存在");
    if (folder_id && !d_->find_folder(*folder_id)) return Outcome<None>::failure(kMsgNoFolder);
    if (name) g->name = *name;
    if (description) g->description = *description;
    if (folder_id) g->folder_id = folder_id;
    return {};
}

Outcome<None> State::delete_group(int64_t id) {
    std::lock_guard lock(mutex_);
    GroupRec* g = d_->find_group(id);
    if (!g) return Outcome<None>::failure(kMsgNoGroup);
    g->members.compact();
    for (int64_t c : g->members.sorted) {
        auto& list = d_->customers.at(c);
        list.erase(std::find(list.begin(), list.end(), id));
    }
    d_->memberships -= static_cast<int64_t>(g->members.sorted.size());
    d_->groups.erase(id);
    return {};
}

cdp::Page<cdp::Group> State::query_groups(const std::string& search_key,
                                          std::optional<int64_t> folder_id, int64_t current,
                                          int64_t size) {
    std::lock_guard lock(mutex_);
    cdp::Page<cdp::Group> page;
    page.current = current;
    page.size = size;
    const int64_t skip = (current - 1) > INT64_MAX / size - 1 ? INT64_MAX - size
                                                              : (current - 1) * size;
    for (auto& [id, g] : d_->groups) {
        if (folder_id && g.folder_id != folder_id) continue;
        if (!search_key.empty() && g.name.find(search_key) == std::string::npos) continue;
        if (page.total >= skip && page.total < skip + size) page.records.push_back(d_->to_group(g));
        ++page.total;
    }
    return page;
}

Outcome<cdp::Page<int64_t>> State::members_page(int64_t group_id, int64_t current,
                                                int64_t size) {
    std::lock_guard lock(mutex_);
    GroupRec* g = d_->find_group(group_id);
    if (!g) return Outcome<cdp::Page<int64_t>>::failure(kMsgNoGroup);
    d_->churn(*g);
    g->members.compact();
    const auto& all = g->members.sorted;
    cdp::Page<int64_t> page;
    page.current = current;
    page.size = size;
    page.total = static_cast<int64_t>(all.size());
    if ((current - 1) < (page.total + size - 1) / size) {
        const size_t from = static_cast<size_t>((current - 1) * size);
        const size_t to = std::min(all.size(), from + static_cast<size_t>(size));
        if (d_->quirks.read.newest_first) {
            page.records.assign(all.rbegin() + static_cast<std::ptrdiff_t>(from),
                                all.rbegin() + static_cast<std::ptrdiff_t>(to));
        } else {
            page.records.assign(all.begin() + static_cast<std::ptrdiff_t>(from),
                                all.begin() + static_cast<std::ptrdiff_t>(to));
        }
    }
    if (page.total > 0) page.total += d_->quirks.read.total_overcount;
    return Outcome<cdp::Page<int64_t>>::success(std::move(page));
}

Outcome<None> State::customer_add_groups(int64_t customer_id,
                                         const std::vector<int64_t>& group_ids) {
    std::lock_guard lock(mutex_);
    return d_->add_or_remove(customer_id, group_ids, true);
}

Outcome<None> State::customer_delete_groups(int64_t customer_id,
                                            const std::vector<int64_t>& group_ids) {
    std::lock_guard lock(mutex_);
    return d_->add_or_remove(customer_id, group_ids, false);
}

Outcome<None> State::customer_update_groups(int64_t customer_id,
                                            const std::vector<int64_t>& group_ids) {
    std::lock_guard lock(mutex_);
    auto it = d_->customers.find(customer_id);
    if (it == d_->customers.end()) return Outcome<None>::failure(kMsgNoCustomer);
    if (auto capped = d_->refuse_over_cap(group_ids)) return Outcome<None>::failure(*capped);
    for (int64_t gid : group_ids) {
        GroupRec* g = d_->find_group(gid);
        if (!g) return Outcome<None>::failure(kMsgNoGroup);
        if (g->type != cdp::kStaticGroup)
            return Outcome<None>::failure("智能群组不能手动添加客户");
    }
    std::vector<int64_t> current_static;
    for (int64_t gid : it->second)
        if (d_->groups.at(gid).type == cdp::kStaticGroup) current_static.push_back(gid);
    for (int64_t gid : current_static)
        if (std::find(group_ids.begin(), group_ids.end(), gid) == group_ids.end())
            d_->remove(customer_id, d_->groups.at(gid));
    for (int64_t gid : group_ids) d_->add(customer_id, d_->groups.at(gid));
    return {};
}

std::optional<WriteOutage> State::take_write_outage() {
    std::lock_guard lock(mutex_);
    WriteQuirks& w = d_->quirks.write;
    if (w.outage_writes == 0) return std::nullopt;
    if (w.outage_writes > 0) --w.outage_writes;
    return WriteOutage{w.outage_code, w.outage_msg};
}

Outcome<std::vector<cdp::CustomerGroup>> State::customer_groups(int64_t customer_id, int type) {
    using R = Outcome<std::vector<cdp::CustomerGroup>>;
    std::lock_guard lock(mutex_);
    if (type != cdp::kStaticGroup && type != cdp::kSmartGroup)
        return R::failure("群组类型错误");
    auto it = d_->customers.find(customer_id);
    if (it == d_->customers.end()) return R::failure(kMsgNoCustomer);
    std::vector<int64_t> ids;
    for (int64_t gid : it->second)
        if (d_->groups.at(gid).type == type) ids.push_back(gid);
    std::sort(ids.begin(), ids.end());
    std::vector<cdp::CustomerGroup> out;
    for (int64_t gid : ids) {
        const GroupRec& g = d_->groups.at(gid);
        cdp::CustomerGroup cg;
        cg.id = g.id;
        cg.name = g.name;
        if (g.folder_id)
            if (const FolderRec* f = d_->find_folder(*g.folder_id)) cg.code = f->code;
        cg.folder_id = g.folder_id;
        cg.status = "1";
        cg.type = g.type;
        out.push_back(std::move(cg));
    }
    return R::success(std::move(out));
}

// ---------------------------------------------------------------- write log

void State::log_write(WriteLogEntry entry) {
    std::lock_guard lock(mutex_);
    d_->write_log.push_back(std::move(entry));
}

std::vector<WriteLogEntry> State::write_log() {
    std::lock_guard lock(mutex_);
    return d_->write_log;
}

void State::clear_write_log() {
    std::lock_guard lock(mutex_);
    d_->write_log.clear();
}

json to_json(const WriteLogEntry& e) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        e.time.time_since_epoch()).count();
    return json{{"endpoint", e.endpoint}, {"customerId", e.customer_id},
                {"groupIds", e.group_ids},  {"timeMs", ms},
                {"code", e.code},           {"msg", e.msg},
                {"fault", e.fault},         {"delayMs", e.delay_ms}};
}

// ---------------------------------------------------------------- customer records

void append_customer_record(std::string& out, int64_t customer_id, bool with_internal_id) {
    static const char* const provinces[] = {"云南省", "安徽省", "河南省", "广东省", "浙江省",
                                            "四川省", "江苏省", "山东省"};
    static const char* const cities[] = {"昆明市", "合肥市", "郑州市", "广州市", "杭州市",
                                         "成都市", "南京市", "济南市"};
    static const char* const names[] = {"小明", "阿花", "老王", "Lily", "晨曦", "海风", "星河", "木子"};
    static const char* const sources[] = {"淘宝", "京东", "小程序", "门店", "公众号"};
    const uint64_t h = splitmix64(static_cast<uint64_t>(customer_id));
    const size_t place = h % 8;
    const long long id = static_cast<long long>(customer_id);
    // Written by hand: a page of 1000 records is the simulator's largest hot reply.
    char head[64] = "\"id\":";
    if (with_internal_id)
        std::snprintf(head, sizeof head, "\"id\":%lld,\"customerId\":",
                      static_cast<long long>(internal_member_row_id(customer_id)));
    char buf[1100];
    const int n = std::snprintf(
        buf, sizeof buf,
        "{%s%lld,\"nickName\":\"%s\",\"gender\":%d,\"email\":\"user%lld@example.com\","
        "\"emailVerified\":%d,\"birthday\":\"%04d-%02d-%02d\",\"province\":\"%s\",\"city\":\"%s\","
        "\"district\":\"\",\"openId\":\"o%016llx\",\"appId\":\"wx0000sim\",\"source\":\"%s\","
        "\"createMethod\":\"api\",\"editable\":0,\"isEmployee\":1,"
        "\"extendAttrList\":[{\"attrKey\":\"level\",\"attrName\":\"会员等级\",\"attrValue\":\"%d\"}]}",
        head, id, names[(h >> 4) % 8], static_cast<int>((h >> 12) % 3), id, static_cast<int>((h >> 20) % 2),
        1950 + static_cast<int>(h % 55), 1 + static_cast<int>((h >> 8) % 12),
        1 + static_cast<int>((h >> 16) % 28), provinces[place], cities[place],
        static_cast<unsigned long long>(h), sources[(h >> 24) % 5], static_cast<int>((h >> 28) % 5));
    out.append(buf, static_cast<size_t>(std::min<int>(n, sizeof buf - 1)));
}

json customer_record(int64_t customer_id) {
    std::string text;
    append_customer_record(text, customer_id);
    return json::parse(text);
}

Quirks State::quirks() {
    std::lock_guard lock(mutex_);
    return d_->quirks;
}

void State::set_quirks(Quirks quirks) {
    std::lock_guard lock(mutex_);
    d_->quirks = std::move(quirks);
    d_->churned_reads = 0;
}

}  // namespace cdpsync::sim
