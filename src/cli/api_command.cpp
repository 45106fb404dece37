// `cdp-sync api ...`: one subcommand per CDP endpoint, for operators. JSON on stdout; a
// failure is one line on stderr and exit 1; a usage error exit 2. The table `commands()`
// is the whole grammar: parsing, validation and --help are driven by it.
#include <charconv>
#include <csignal>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cdp/api.hpp"
#include "cli/cli_app.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "config/logging.hpp"
#include "config/text.hpp"
#include "config/token.hpp"

namespace cdpsync::cli {

namespace {

namespace net = boost::asio;
using cdp::json;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
enum class OptKind { flag, text, integer, positive, group_type };

struct OptSpec {
    const char* name;  // "--folder"
    OptKind kind;
    const char* value_name;
    const char* help;
    bool required = false;
};

// Positional ids: `min` to `max` of them (-1: unlimited).
struct IdsSpec {
    const char* name;  // "GROUP_ID"
    int min;
    int max;
};

// A parsed command line: integer positionals, options by name ("--all" -> "" when set).
struct Invocation {
    std::vector<int64_t> ids;
    std::map<std::string, std::string> opts;
    bool verbose = false;
    bool has(const std::string& name) const { return opts.count(name) > 0; }
    std::optional<std::string> text(const std::string& name) const {
        auto it = opts.find(name);
        if (it == opts.end()) return std::nullopt;
        return it->second;
    }
    std::optional<int64_t> integer(const std::string& name) const;
};

// What a command produced: JSON to print, or nothing when it streamed its own output.
struct Outcome {
    std::optional<json> output;
    std::optional<cdp::CallError> error;
};

struct Context {
    cdp::Api& api;
    const Invocation& inv;
    std::ostream& out;
    int64_t page_size;  // --size, else cdp.page_size
};

using Runner = net::awaitable<Outcome> (*)(Context&);

struct CommandSpec {
    const char* noun;
    const char* verb;
    std::vector<IdsSpec> ids;  // positional arguments (all are ids), in order
    std::vector<OptSpec> options;
    const char* summary;
    Runner run;
};

std::optional<int64_t> parse_int(const std::string& s) {
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::optional<int64_t> Invocation::integer(const std::string& name) const {
    auto t = this->text(name);
    if (!t) return std::nullopt;
    return parse_int(*t);  // validated while parsing
}

template <class T>
Outcome from(cdp::Result<T>&& r, json (*to_output)(T&)) {
    if (!r.has_value()) return Outcome{std::nullopt, std::move(r.error())};
    return Outcome{to_output(r.value()), std::nullopt};
}

Outcome done(cdp::Result<cdp::Done>&& r) {
    return from<cdp::Done>(std::move(r), [](cdp::Done&) { return json{{"ok", true}}; });
}

Outcome created(cdp::Result<int64_t>&& r) {
    return from<int64_t>(std::move(r), [](int64_t& id) { return json{{"id", id}}; });
}

template <class T, class F>
json page_json(const cdp::Page<T>& page, F record) {
    json records = json::array();
    for (const auto& r : page.records) records.push_back(record(r));
    return json{{"current", page.current}, {"size", page.size}, {"total", page.total}, {"records", std::move(records)}};
}

template <class T>
json list_json(std::vector<T>& items) {
    json a = json::array();
    for (const auto& i : items) a.push_back(cdp::to_json(i));
    return a;
}

const OptSpec kAll{"--all", OptKind::flag, nullptr, "fetch every page"};
const OptSpec kPage{"--page", OptKind::positive, "N", "page number, from 1 (default 1)"};
const OptSpec kSize{"--size", OptKind::positive, "N", "records a page (default cdp.page_size)"};
const OptSpec kFolder{"--folder", OptKind::integer, "ID", "folder (group category) id"};
const OptSpec kDescription{"--description", OptKind::text, "D", "group description"};

json group_page_json(cdp::Page<cdp::Group>& p) {
    return page_json(p, [](const cdp::Group& g) { return cdp::to_json(g); });
}
json member_page_json(cdp::Page<cdp::Member>& p) {
    return page_json(p, [](const cdp::Member& m) { return m.record; });
}

// The runners keep every argument of a co_await in a named local: GCC 12 miscompiles some
// temporaries (closures, braced lists) that live across a co_await.
net::awaitable<Outcome> groups_list(Context& c) {
    const std::string search = c.inv.text("--search").value_or("");
    const std::optional<int64_t> folder = c.inv.integer("--folder");
    if (c.inv.has("--all")) {
        auto r = co_await c.api.query_all_groups(search, folder);
        co_return from<std::vector<cdp::Group>>(std::move(r), list_json<cdp::Group>);
    }
    cdp::GroupQuery q{search, folder, c.inv.integer("--page").value_or(1), c.page_size};
    auto r = co_await c.api.query_groups(std::move(q));
    co_return from<cdp::Page<cdp::Group>>(std::move(r), group_page_json);
}

net::awaitable<Outcome> groups_create(Context& c) {
    cdp::CreateGroup request{*c.inv.text("--name"), c.inv.text("--description").value_or(""),
                             c.inv.integer("--folder")};
    auto r = co_await c.api.create_group(std::move(request));
    co_return created(std::move(r));
}

net::awaitable<Outcome> groups_update(Context& c) {
    cdp::UpdateGroup request;
    request.id = c.inv.ids[0];
    request.name = c.inv.text("--name");
    request.description = c.inv.text("--description");
    request.folder_id = c.inv.integer("--folder");
    auto r = co_await c.api.update_group(std::move(request));
    co_return done(std::move(r));
}

net::awaitable<Outcome> groups_delete(Context& c) {
    auto r = co_await c.api.delete_group(c.inv.ids[0]);
    co_return done(std::move(r));
}

net::awaitable<Outcome> folders_tree(Context& c) {
    auto r = co_await c.api.folder_tree();
    co_return from<std::vector<cdp::Folder>>(std::move(r), list_json<cdp::Folder>);
}

net::awaitable<Outcome> folders_add(Context& c) {
    std::string name = *c.inv.text("--name");
    std::string parent = c.inv.text("--parent").value_or("");
    auto r = co_await c.api.add_folder(std::move(name), std::move(parent));
    co_return created(std::move(r));
}

net::awaitable<Outcome> folders_update(Context& c) {
    std::string name = *c.inv.text("--name");
    auto r = co_await c.api.update_folder(c.inv.ids[0], std::move(name));
    co_return done(std::move(r));
}

net::awaitable<Outcome> folders_delete(Context& c) {
    auto r = co_await c.api.delete_folder(c.inv.ids[0]);
    co_return done(std::move(r));
}

net::awaitable<Outcome> members_list(Context& c) {
    const int64_t group = c.inv.ids[0];
    if (!c.inv.has("--all")) {
        auto r = co_await c.api.members_page(group, c.inv.integer("--page").value_or(1), c.page_size);
        co_return from<cdp::Page<cdp::Member>>(std::move(r), member_page_json);
    }
    // Streamed: a large group need not fit in memory. On failure the array stays open.
    bool first = true;
    std::ostream& out = c.out;
    cdp::Api::MemberPageHandler on_page = [&first, &out](int64_t, cdp::Page<cdp::Member>&& page) {
        for (const auto& m : page.records) {
            out << (first ? "[\n" : ",\n") << m.record.dump();
            first = false;
        }
    };
    auto r = co_await c.api.for_each_member_page(group, std::move(on_page), 1, cdp::MemberRecords::whole);
    if (!r.has_value()) {
        if (!first) out << std::endl;
        co_return Outcome{std::nullopt, std::move(r.error())};
    }
    out << (first ? "[]" : "\n]") << std::endl;
    co_return Outcome{};
}

cdp::MembershipChange membership_change(const Invocation& inv) {
    return cdp::MembershipChange{inv.ids[0], std::vector<int64_t>(inv.ids.begin() + 1, inv.ids.end())};
}

net::awaitable<Outcome> members_add(Context& c) {
    cdp::MembershipChange change = membership_change(c.inv);
    auto r = co_await c.api.customer_add_groups(std::move(change));
    co_return done(std::move(r));
}

net::awaitable<Outcome> members_remove(Context& c) {
    cdp::MembershipChange change = membership_change(c.inv);
    auto r = co_await c.api.customer_delete_groups(std::move(change));
    co_return done(std::move(r));
}

net::awaitable<Outcome> members_set(Context& c) {
    cdp::MembershipChange change = membership_change(c.inv);
    auto r = co_await c.api.customer_update_groups(std::move(change));
    co_return done(std::move(r));
}

net::awaitable<Outcome> customer_groups(Context& c) {
    const int type = c.inv.text("--type").value_or("static") == "smart" ? cdp::kSmartGroup : cdp::kStaticGroup;
    auto r = co_await c.api.groups_of_customer(c.inv.ids[0], type);
    co_return from<std::vector<cdp::CustomerGroup>>(std::move(r), list_json<cdp::CustomerGroup>);
}

const IdsSpec kId{"ID", 1, 1};
const IdsSpec kCustomer{"CUSTOMER_ID", 1, 1};

const std::vector<CommandSpec>& commands() {
    static const std::vector<CommandSpec> table = {
        {"groups", "list", {}, {{"--search", OptKind::text, "K", "name contains K"}, kFolder, kAll, kPage, kSize},
         "list customer groups (simpleQuery)", groups_list},
        {"groups", "create", {}, {{"--name", OptKind::text, "N", "group name", true}, kDescription, kFolder},
         "create a static group (addSingleGroup); prints its id", groups_create},
        {"groups", "update", {kId}, {{"--name", OptKind::text, "N", "new name"}, kDescription, kFolder},
         "change a group's name, description or folder (updateCustomerGroup)", groups_update},
        {"groups", "delete", {kId}, {}, "delete a group and its memberships (deleteCustomerGroup)", groups_delete},
        {"folders", "tree", {}, {}, "the folder tree (queryTreeFormList)", folders_tree},
        {"folders", "add", {},
         {{"--name", OptKind::text, "N", "folder name", true}, {"--parent", OptKind::text, "CODE", "parent folder code"}},
         "add a folder (group/add); prints its id", folders_add},
        {"folders", "update", {kId}, {{"--name", OptKind::text, "N", "new name", true}},
         "rename a folder (group/update)", folders_update},
        {"folders", "delete", {kId}, {}, "delete an empty folder (group/delete)", folders_delete},
        {"members", "list", {{"GROUP_ID", 1, 1}}, {kAll, kPage, kSize},
         "a group's members (getCustomerPageByGroupId); --all streams one JSON array", members_list},
        {"members", "add", {kCustomer, {"GROUP_ID", 1, -1}}, {}, "add a customer to groups (customerAddGroups)",
         members_add},
        {"members", "remove", {kCustomer, {"GROUP_ID", 1, -1}}, {},
         "remove a customer from groups (customerDeleteGroups)", members_remove},
        {"members", "set", {kCustomer, {"GROUP_ID", 0, -1}}, {},
         "replace ALL static groups of a customer (customerUpdateGroups)", members_set},
        {"customer", "groups", {kCustomer},
         {{"--type", OptKind::group_type, "static|smart", "group type (default static)"}},
         "the groups a customer is in (getGroupsByCustomerId)", customer_groups},
    };
    return table;
}

int run(const GlobalOptions& global, const CommandSpec& spec, const Invocation& inv) {
    const auto loaded = load_config_or_usage(global, "api", ErrorLines::one_line);
    if (!loaded) return kExitUsage;
    const config::Config& cfg = *loaded;
    // stderr is for the one-line outcome; --verbose shows warnings and each retry.
    logging::init_stderr(inv.verbose ? "debug" : "error");

    cdp::ApiOptions options = cdp::ApiOptions::from_config(cfg.cdp);
    if (auto size = inv.integer("--size")) options.page_size = *size;

    net::io_context io;
    cdp::Api api(io.get_executor(), options, config::TokenSource(cfg.cdp), logging::logger("cdp"));
    Context ctx{api, inv, std::cout, options.page_size};

    // Ctrl-C cancels the call (its retries included) instead of killing mid-output.
    net::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec) api.stop();
    });

    Outcome outcome;
    std::exception_ptr thrown;
    net::co_spawn(
        io, spec.run(ctx),
        [&](std::exception_ptr e, Outcome o) {
            thrown = e;
            outcome = std::move(o);
            signals.cancel();
        });
    io.run();

    if (thrown) std::rethrow_exception(thrown);
    if (outcome.error) {
        std::cerr << "cdp-sync api: " << text::one_line(outcome.error->describe()) << std::endl;
        return kExitFailure;
    }
    if (outcome.output) std::cout << outcome.output->dump(2) << std::endl;
    return kExitOk;
}

const CLI::Validator kIsInteger(
    [](std::string& value) { return parse_int(value) ? std::string() : "needs an integer, got '" + value + "'"; },
    "", "integer");

void add_option(CLI::App& verb, const OptSpec& spec, const std::shared_ptr<Invocation>& inv) {
    const std::string name = spec.name;
    if (spec.kind == OptKind::flag) {
        verb.add_flag_callback(name, [inv, name] { inv->opts[name] = ""; }, spec.help);
        return;
    }
    auto* option = verb.add_option_function<std::string>(
        name, [inv, name](const std::string& value) { inv->opts[name] = value; }, spec.help);
    option->type_name(spec.value_name)->required(spec.required);
    if (spec.kind == OptKind::integer) option->check(kIsInteger);
    if (spec.kind == OptKind::positive) option->check(kIsInteger & CLI::Range(int64_t{1}, INT64_MAX));
    if (spec.kind == OptKind::group_type) option->check(CLI::IsMember({"static", "smart"}).description(""));
}

void add_ids(CLI::App& verb, const IdsSpec& spec, const std::shared_ptr<Invocation>& inv) {
    CLI::Option* option = nullptr;
    if (spec.max == 1) {
        option = verb.add_option_function<int64_t>(spec.name, [inv](int64_t id) { inv->ids.push_back(id); });
    } else {  // the rest of the ids: only the last positional takes many
        auto append = [inv](const std::vector<int64_t>& ids) {
            inv->ids.insert(inv->ids.end(), ids.begin(), ids.end());
        };
        option = verb.add_option_function<std::vector<int64_t>>(spec.name, append);
    }
    option->required(spec.min > 0);
}

// One CLI11 subcommand per table row, under one per noun.
void add_verb(CLI::App& noun, const CommandSpec& spec, const GlobalOptions& global,
              const std::shared_ptr<const bool>& verbose, Action& action) {
    CLI::App* verb = noun.add_subcommand(spec.verb, spec.summary);
    auto inv = std::make_shared<Invocation>();
    for (const auto& ids : spec.ids) add_ids(*verb, ids, inv);
    for (const auto& option : spec.options) add_option(*verb, option, inv);
    verb->callback([&action, &global, verbose, &spec, inv] {
        action = [&global, verbose, &spec, inv] {
            inv->verbose = *verbose;
            return run(global, spec, *inv);
        };
    });
}

}  // namespace

void add_api_command(CLI::App& app, const GlobalOptions& global, Action& action) {
    CLI::App* api = app.add_subcommand("api", "one call per CDP endpoint, JSON out (see api --help)");
    auto verbose = std::make_shared<bool>(false);
    api->add_flag("-v,--verbose", *verbose, "log warnings and each retry on stderr");
    std::map<std::string, CLI::App*> nouns;
    for (const auto& spec : commands()) {
        CLI::App*& noun = nouns[spec.noun];
        if (!noun) noun = api->add_subcommand(spec.noun, std::string("the ") + spec.noun + " endpoints");
        add_verb(*noun, spec, global, verbose, action);
    }
    api->footer(  // after the nouns: they would inherit it
        "One call of the CDP open API; prints JSON on stdout.\n"
        "Exit status: 0 success, 1 the call failed (one line on stderr), 2 usage or configuration error.");
}

}  // namespace cdpsync::cli
