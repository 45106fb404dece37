// The group map: each desired group name and the CDP group it is (id, type, description,
// folder), whether cdp-sync created it, and whether the mirror holds a snapshot of it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "store/repository.hpp"

namespace cdpsync::store {

struct GroupMapping {
    std::string name;
    std::optional<int64_t> group_id;
    int type = 1;
    std::optional<std::string> description;
    std::optional<int64_t> folder_id;
    bool created_by_us = false;
    bool snapshotted = false;  // the mirror holds a complete snapshot of the group
    std::string error;
    bool recheck = false;      // a write was refused as if the group did not exist: confirm it
};

class GroupMap : public Repository {
public:
    using Repository::Repository;

    std::map<std::string, GroupMapping> group_map();
    void save_group(const GroupMapping& g);  // clears recheck
    // A write was refused as if this group did not exist: the next groups phase confirms it
    // (and recreates it when it is really gone) before trusting the mapping again.
    void flag_group_recheck(int64_t group_id);
    // Drops a group deleted in the CDP from the group map and the mirror.
    void forget_group(const std::string& name, int64_t group_id);
};

}  // namespace cdpsync::store
