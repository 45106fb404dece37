// Internal to src/store: the SQL that records apply outcomes, shared by Journal::record_op
// (one outcome, or a batch per transaction).
#pragma once

#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "store/journal.hpp"

namespace cdpsync::store::detail {

using Outcome = std::pair<Op, OpOutcome>;

// Every outcome of `batch` and, for the successful ones, their mirror change, inside `tx`
// (the caller commits). Set-based: one statement each for the done ops, the added and the
// removed memberships; set ops and failures one by one (rare).
void record_outcomes(pqxx::work& tx, const std::string& quoted_schema, const std::vector<Outcome>& batch);

std::vector<Op> pending_ops(pqxx::work& tx, const std::string& quoted_schema, int64_t run_id, int64_t after_id,
                            int limit);

}  // namespace cdpsync::store::detail
