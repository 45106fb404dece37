// The op journal: one planned membership write per row and its outcome, recorded with the
// mirror change it makes in one transaction. (The plan is written into it by
// Planner::journal_plan.)
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/repository.hpp"

namespace cdpsync::store {

enum class OpKind { add, remove, set };
const char* to_string(OpKind kind);
OpKind parse_op_kind(const std::string& s);

struct Op {
    int64_t id = 0;
    int64_t run_id = 0;
    int64_t customer_id = 0;
    OpKind kind = OpKind::add;
    std::vector<int64_t> group_ids;
    int attempts = 0;
};

struct OpOutcome {
    bool ok = false;
    bool permanent = false;  // known to be refused for good (retried after retry_in anyway)
    // Failed: the identical op of a later incremental run waits this long (next_attempt_at).
    std::optional<std::chrono::seconds> retry_in;
    int http_status = 0;
    std::optional<int> cdp_code;
    std::string msg;
};

struct OpTotals {
    int64_t pending = 0, done = 0, failed = 0, permanent = 0;
    int64_t total() const { return pending + done + failed + permanent; }
};

struct FailedOp {
    Op op;
    std::string state;
    int http_status = 0;
    std::optional<int> cdp_code;
    std::string msg;
    std::string next_attempt_at;  // ISO time, "" when not waiting
};

// How journal_plan treats a new op identical to one that failed before.
struct CarryOver {
    bool reset = false;  // a full run: every op is sent, marks and attempts start over
};

class Journal : public Repository {
public:
    using Repository::Repository;

    // Pending ops of a run with id > after_id, by id.
    std::vector<Op> pending_ops(int64_t run_id, int64_t after_id, int limit);
    // Records one outcome and, on success, the mirror change, in one transaction.
    void record_op(const Op& op, const OpOutcome& outcome);
    // Many outcomes (and their mirror changes) in one transaction (group commit).
    void record_ops(const std::vector<std::pair<Op, OpOutcome>>& outcomes);
    OpTotals op_totals(int64_t run_id);
    std::vector<FailedOp> failed_ops(int64_t run_id, int limit);
    // Replaces a pending op by one pending op per part (same run), in one transaction; the
    // original becomes 'superseded'. Returns the new ops.
    std::vector<Op> split_op(const Op& op, const std::vector<std::vector<int64_t>>& parts);
    // Failed/permanent ops of the newest run that has any, waiting to be sent again.
    std::vector<FailedOp> waiting_ops(int limit);
    // The operator's "retry now": clears the waits and attempts of every failed/permanent op
    // so the next run sends them. Returns how many.
    int64_t clear_op_waits();
};

}  // namespace cdpsync::store
