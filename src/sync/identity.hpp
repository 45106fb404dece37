// Member identity: which field of a member record is the customer id. The API documents
// none; a record may carry an internal row `id` beside `customerId`. Removals name customer
// ids, so before the first removal the field is confirmed on the live CDP: a sample of ids
// read from one member page of a managed group must each list that group in
// getGroupsByCustomerId. `cdp-sync check` and a run share this confirmation; the store keeps
// it (identity_confirmation), keyed by the setting of cdp.customer_id_field.
#pragma once

#include <cstdint>
#include <string>
#include <utility>  // before awaitable.hpp (GCC 12)
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "cdp/api.hpp"
#include "store/planner.hpp"

namespace cdpsync::sync {

struct IdentityCheck {
    enum class Outcome {
        confirmed,  // every sampled id lists the group
        mismatch,   // an id does not: the field names something else than customers
        no_sample,  // no managed group has members to sample
        error,      // a call failed (try again later)
    };
    Outcome outcome = Outcome::no_sample;
    std::string setting;         // cdp.customer_id_field as set ("auto" for "")
    std::string field;           // the record field the ids were read from
    int64_t group_id = 0;
    std::string group_name;
    std::vector<int64_t> customer_ids;  // sampled
    std::string detail;          // for people: what was found

    bool confirmed() const { return outcome == Outcome::confirmed; }
    std::string describe() const;
};

// The store's key for a cdp.customer_id_field setting ("" = "auto").
std::string identity_setting(const std::string& customer_id_field);

// Samples up to `samples` members of the first of `groups` (positive ids) that has any.
// Costs one member page (of `samples` records) per empty group tried, plus one
// getGroupsByCustomerId per sampled id.
boost::asio::awaitable<IdentityCheck> check_member_identity(cdp::Api& api, std::vector<store::ManagedGroup> groups,
                                                            std::string customer_id_field, int samples = 3);

}  // namespace cdpsync::sync
