// The mirror of the CDP's memberships (remote_member), filled by resumable snapshots (a
// cursor per snapshot and group, the pages read of an unfinished group), and the record of
// which member id field was confirmed to be the customer id.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "store/repository.hpp"

namespace cdpsync::store {

struct SnapshotCursor {
    int64_t group_id = 0;
    int64_t next_page = 1;
    int page_size = 0;  // page numbers count pages of this size
    bool done = false;
    bool unreliable = false;  // done, but no pass of the read was consistent
};

class Mirror : public Repository {
public:
    using Repository::Repository;

    // Forgets the mirror of a group (it was deleted in the CDP, or is new and empty).
    void reset_group_mirror(int64_t group_id, bool snapshotted);
    void snapshot_begin(int64_t snapshot_id, const std::vector<int64_t>& group_ids, int page_size);
    // Back to page 1 with a new page size, dropping the pages read (the size changed).
    void snapshot_restart_group(int64_t snapshot_id, int64_t group_id, int page_size);
    std::map<int64_t, SnapshotCursor> snapshot_cursors(int64_t snapshot_id);
    // One page, atomically with its cursor; ignored (false) unless page == next_page.
    bool snapshot_page(int64_t snapshot_id, int64_t group_id, int64_t page,
                       const std::vector<int64_t>& customer_ids);
    // Several pages in one transaction, each with its cursor as snapshot_page does; returns
    // how many were taken (a page not at its cursor is ignored).
    struct PageRows {
        int64_t snapshot_id = 0;
        int64_t group_id = 0;
        int64_t page = 0;
        std::vector<int64_t> customer_ids;
    };
    int64_t snapshot_pages(const std::vector<PageRows>& pages);
    // Replaces the group's mirror with the pages read, marks the cursor done (and unreliable
    // when no pass of the read was consistent). Returns members.
    int64_t snapshot_finish_group(int64_t snapshot_id, int64_t group_id, bool unreliable = false);
    // The pages read so far of an unfinished group: rows, and distinct customers among them.
    struct PassCount {
        int64_t rows = 0;
        int64_t distinct = 0;
    };
    PassCount snapshot_pass_count(int64_t snapshot_id, int64_t group_id);
    void snapshot_discard(int64_t snapshot_id);
    // Drops the pages and cursors of every snapshot that no running run owns (call with the
    // apply lock held).
    void snapshot_gc();
    // Mirror members of each of `group_ids` (0 for a group the mirror holds nothing of).
    std::map<int64_t, int64_t> mirror_counts(const std::vector<int64_t>& group_ids);
    int64_t mirror_count(int64_t group_id);
    // Member identity: whether reading customer ids under the setting `field` ("auto" or a
    // field name) was confirmed (by check, or a run before its first removal), and the record
    // of a confirmation (`resolved_field`: the record field the ids came from).
    bool identity_confirmed(const std::string& field);
    void confirm_identity(const std::string& field, const std::string& resolved_field, int64_t group_id,
                          const std::vector<int64_t>& customer_ids);
};

}  // namespace cdpsync::store
