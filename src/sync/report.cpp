// What a run and a plan say to people: the log's summary line, text and JSON output.
#include <set>
#include <sstream>

#include <spdlog/fmt/fmt.h>

#include "sync/engine.hpp"

namespace cdpsync::sync {
namespace {

std::string ids(const std::vector<int64_t>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

void source_text(std::ostringstream& o, const store::SourceStats& s) {
    o << fmt::format("  source: {} rows read, {} rejected, {} duplicates, {} distinct memberships\n", s.rows_read,
                     s.rows_rejected, s.duplicates, s.desired);
    for (const auto& [reason, n] : s.rejected_by_reason) o << fmt::format("    rejected {}: {}\n", n, reason);
    for (const auto& e : s.examples)
        o << fmt::format("    e.g. customer_id '{}', group_name '{}': {}\n", e.customer_id, e.group_name, e.reason);
}

json counts_json(const store::RunCounts& c) {
    return {{"rows_read", c.rows_read},       {"rows_rejected", c.rows_rejected},
            {"duplicates", c.duplicates},     {"adds", c.adds},
            {"removes", c.removes},           {"ops_planned", c.ops_planned},
            {"ops_done", c.ops_done},         {"ops_failed", c.ops_failed},
            {"ops_permanent", c.ops_permanent}, {"calls", c.calls},
            {"retries", c.retries},           {"failures", c.failures},
            {"member_pages", c.member_pages}, {"groups_created", c.groups_created},
            {"group_errors", c.group_errors}};
}

}  // namespace

namespace {

// " source 0.12s, groups 0.03s, ..." in the order of a run; " none" when no phase ran.
std::string phases_text(const std::map<std::string, double>& seconds) {
    static const char* const kOrder[] = {"source", "groups", "snapshot", "plan", "journal", "apply", "prune"};
    std::string out;
    for (const char* name : kOrder) {
        auto it = seconds.find(name);
        if (it != seconds.end()) out += fmt::format("{} {} {:.2f}s", out.empty() ? "" : ",", name, it->second);
    }
    if (auto it = seconds.find("overlap"); it != seconds.end())
        out += fmt::format(" (source and reads overlapped {:.2f}s)", it->second);
    return out.empty() ? " none" : out;
}

}  // namespace

std::string RunReport::summary_line() const {
    const auto& c = counts;
    const std::string from = resumed ? fmt::format(" (resumed from {})", store::to_string(resumed_phase)) : "";
    return fmt::format(
        "run {} {} {}{} in {:.1f}s: rows {} read, {} rejected, {} duplicate; +{} -{} memberships; "
        "ops {} planned, {} done, {} failed, {} permanent; calls {} (retries {}, failures {}); pages {}; "
        "groups created {}, group errors {}; phases{}{}{}",
        run_id, to_string(kind), to_string(status), from, seconds,
        c.rows_read, c.rows_rejected, c.duplicates, c.adds, c.removes, c.ops_planned, c.ops_done, c.ops_failed,
        c.ops_permanent, c.calls, c.retries, c.failures, c.member_pages, c.groups_created, c.group_errors,
        phases_text(phase_seconds), error.empty() ? "" : "; ", error);
}

std::string RunReport::to_text() const {
    std::ostringstream o;
    o << fmt::format("{} sync: {}", to_string(kind), to_string(status));
    const std::string from = resumed ? fmt::format(", resumed from {}", store::to_string(resumed_phase)) : "";
    if (run_id) o << fmt::format(" (run {}{}, {:.1f} s)", run_id, from, seconds);
    o << "\n";
    if (!error.empty()) o << "  " << error << "\n";
    if (status == RunStatus::busy) return o.str();
    source_text(o, source);
    o << fmt::format("  plan: +{} -{} memberships, {} customers; {} write calls\n", counts.adds, counts.removes,
                     plan.customers, counts.ops_planned);
    o << fmt::format("  apply: {} done, {} failed, {} permanent; {} CDP calls ({} retries), {} member pages, {} groups created\n",
                     counts.ops_done, counts.ops_failed, counts.ops_permanent, counts.calls, counts.retries,
                     counts.member_pages, counts.groups_created);
    for (const auto& g : group_errors) o << fmt::format("  group '{}': {}\n", g.name, g.error);
    for (const auto& f : failures)
        o << fmt::format("  op {} {} customer {} groups [{}]: {} after {} attempt(s): {}{}\n", f.op.id,
                         store::to_string(f.op.kind), f.op.customer_id, ids(f.op.group_ids), f.state, f.op.attempts,
                         f.http_status ? fmt::format("HTTP {} ", f.http_status) : "",
                         (f.cdp_code ? fmt::format("code {}: ", *f.cdp_code) : "") + f.msg);
    for (const auto& [c, g] : guard_sample) o << fmt::format("  would remove customer {} from '{}'\n", c, g);
    return o.str();
}

json RunReport::to_json() const {
    json j{{"run_id", run_id},
           {"kind", to_string(kind)},
           {"status", to_string(status)},
           {"resumed", resumed},
           {"seconds", seconds},
           {"phase_seconds", phase_seconds},
           {"counts", counts_json(counts)},
           {"source", source.to_json()},
           {"plan", plan.to_json()},
           {"error", error}};
    json ge = json::array();
    for (const auto& g : group_errors) ge.push_back({{"group", g.name}, {"error", g.error}});
    j["group_errors"] = ge;
    json fs = json::array();
    for (const auto& f : failures)
        fs.push_back({{"op", f.op.id}, {"customer_id", f.op.customer_id}, {"kind", store::to_string(f.op.kind)},
                      {"group_ids", f.op.group_ids}, {"state", f.state}, {"http_status", f.http_status},
                      {"cdp_code", f.cdp_code ? json(*f.cdp_code) : json(nullptr)}, {"msg", f.msg}});
    j["failures"] = fs;
    return j;
}

// One updateCustomerGroup per group, for a new description and a move together.
int64_t PlanReport::update_calls() const {
    std::set<std::string> names(descriptions_to_update.begin(), descriptions_to_update.end());
    for (const auto& m : groups_to_move) names.insert(m.substr(0, m.find(" -> ")));
    return static_cast<int64_t>(names.size());
}

int64_t PlanReport::calls() const {
    return plan.write_calls() + update_calls() +
           static_cast<int64_t>(groups_to_create.size() + folders_to_create.size() + groups_to_delete.size());
}

std::string PlanReport::to_text() const {
    std::ostringstream o;
    if (!error.empty()) {
        o << "plan failed: " << error << "\n";
        return o.str();
    }
    o << fmt::format("plan: +{} -{} memberships for {} customers; {} CDP write calls\n", plan.adds, plan.removes,
                     plan.customers, calls());
    source_text(o, source);
    o << fmt::format("  calls: {} customerAddGroups, {} customerDeleteGroups, {} customerUpdateGroups, "
                     "{} addSingleGroup, {} group/add, {} updateCustomerGroup\n",
                     plan.add_calls, plan.remove_calls, plan.set_calls, groups_to_create.size(),
                     folders_to_create.size(), update_calls());
    if (member_pages_read) o << fmt::format("  mirror refreshed: {} member pages read\n", member_pages_read);
    for (const auto& n : folders_to_create) o << fmt::format("  would create folder '{}'\n", n);
    for (const auto& n : groups_to_create) o << fmt::format("  would create group '{}'\n", n);
    for (const auto& n : descriptions_to_update) o << fmt::format("  would update the description of '{}'\n", n);
    for (const auto& m : groups_to_move) o << fmt::format("  would move group {}\n", m);
    for (const auto& n : groups_to_delete)
        o << fmt::format("  would delete group '{}' (sync.prune_groups: the database no longer names it)\n", n);
    for (const auto& g : group_errors) o << fmt::format("  group '{}': {}\n", g.name, g.error);
    o << fmt::format("  {:<32} {:>10} {:>10} {:>10} {:>10} {:>10}  samples\n", "group", "id", "desired", "mirror",
                     "add", "remove");
    for (const auto& g : plan.groups)
        o << fmt::format("  {:<32} {:>10} {:>10} {:>10} {:>10} {:>10}  +[{}] -[{}]\n", g.name,
                         g.group_id > 0 ? std::to_string(g.group_id) : "(new)", g.desired, g.mirror, g.adds,
                         g.removes, ids(g.sample_adds), ids(g.sample_removes));
    if (guard_would_block)
        o << fmt::format("  the delete guard would stop this run: {} removals > sync.max_deletes {} (needs --force)\n",
                         plan.removes + prune_removes, max_deletes);
    return o.str();
}

json PlanReport::to_json() const {
    json j = plan.to_json();
    j["source"] = source.to_json();
    j["groups_to_create"] = groups_to_create;
    j["folders_to_create"] = folders_to_create;
    j["descriptions_to_update"] = descriptions_to_update;
    j["groups_to_move"] = groups_to_move;
    j["groups_to_delete"] = groups_to_delete;
    j["prune_removes"] = prune_removes;
    json ge = json::array();
    for (const auto& g : group_errors) ge.push_back({{"group", g.name}, {"error", g.error}});
    j["group_errors"] = ge;
    j["member_pages_read"] = member_pages_read;
    j["guard_would_block"] = guard_would_block;
    j["max_deletes"] = max_deletes;
    j["write_calls"] = calls();
    j["error"] = error;
    return j;
}

}  // namespace cdpsync::sync
