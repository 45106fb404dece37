#include "sync/identity.hpp"

#include <algorithm>

namespace cdpsync::sync {

namespace {

using Outcome = IdentityCheck::Outcome;

// Whether `customer_id` lists `group_id` among its static groups; sets `c` on a mismatch
// or an error.
boost::asio::awaitable<bool> lists_group(cdp::Api& api, int64_t customer_id, IdentityCheck& c) {
    auto groups = co_await api.groups_of_customer(customer_id);
    if (!groups.has_value()) {
        const auto& e = groups.error();
        if (e.kind == cdp::CallError::Kind::cdp_code && !e.transient()) {
            c.outcome = Outcome::mismatch;
            c.detail = "getGroupsByCustomerId does not know customer " + std::to_string(customer_id) + " (" +
                       e.msg + ")";
        } else {
            c.outcome = Outcome::error;
            c.detail = "getGroupsByCustomerId failed: " + e.describe();
        }
        co_return false;
    }
    const auto& list = groups.value();
    if (std::none_of(list.begin(), list.end(), [&](const cdp::CustomerGroup& g) { return g.id == c.group_id; })) {
        c.outcome = Outcome::mismatch;
        c.detail = "customer " + std::to_string(customer_id) + " (read from the member list of group " +
                   std::to_string(c.group_id) + ") is not in that group by getGroupsByCustomerId";
        co_return false;
    }
    co_return true;
}

}  // namespace

std::string identity_setting(const std::string& customer_id_field) {
    return customer_id_field.empty() ? "auto" : customer_id_field;
}

std::string IdentityCheck::describe() const {
    switch (outcome) {
    case Outcome::confirmed:
        return "member identity confirmed: customer ids read from field '" + field + "' (cdp.customer_id_field: " +
               setting + "), " + std::to_string(customer_ids.size()) + " id(s) of group '" + group_name +
               "' checked with getGroupsByCustomerId";
    case Outcome::mismatch:
        return "member identity mismatch: the customer id was read from field '" + field +
               "' of the member records (cdp.customer_id_field: " + setting + "), but " + detail +
               ". That field does not hold customer ids; set cdp.customer_id_field to the record field that does";
    case Outcome::no_sample:
        return "member identity not confirmed yet: no managed group has members to sample";
    case Outcome::error:
        return "member identity not confirmed: " + detail;
    }
    return detail;
}

boost::asio::awaitable<IdentityCheck> check_member_identity(cdp::Api& api, std::vector<store::ManagedGroup> groups,
                                                            std::string customer_id_field, int samples) {
    IdentityCheck c;
    c.setting = identity_setting(customer_id_field);
    c.field = customer_id_field;
    for (const auto& g : groups) {
        if (g.group_id <= 0) continue;
        auto page = co_await api.members_page(g.group_id, 1, samples);
        if (!page.has_value()) {
            // A record without the configured field does not decode: that is the mismatch.
            const bool undecodable = page.error().kind == cdp::CallError::Kind::malformed && !page.error().not_json;
            c.outcome = undecodable ? Outcome::mismatch : Outcome::error;
            c.group_id = g.group_id;
            c.group_name = g.name;
            c.field = c.setting;
            c.detail = (undecodable ? "the member records of group '" + g.name + "' do not decode: "
                                    : "reading members of group '" + g.name + "' failed: ") +
                       page.error().describe();
            co_return c;
        }
        if (page.value().records.empty()) continue;
        c.group_id = g.group_id;
        c.group_name = g.name;
        c.field = cdp::member_id_field(page.value().records.front().record, customer_id_field);
        for (const auto& m : page.value().records) {
            if (static_cast<int>(c.customer_ids.size()) >= samples) break;
            c.customer_ids.push_back(m.customer_id);
            const int64_t id = m.customer_id;
            const bool listed = co_await lists_group(api, id, c);
            if (!listed) co_return c;
        }
        c.outcome = Outcome::confirmed;
        co_return c;
    }
    co_return c;
}

}  // namespace cdpsync::sync
