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
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "config/logging.hpp"
#include "config/token.hpp"

namespace cdpsync::cli {

namespace {

namespace net = boost::asio;
using cdp::json;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class OptKind { flag, text, integer, group_type };

struct OptSpec {
    const char* name;  // "--folder"
    OptKind kind;
    const char* value_name;
    const char* help;
    bool required = false;
};

// A parsed command line: integer positionals, options by name ("--all" -> "" when set).
struct Invocation {
    std::vector<int64_t> ids;
    std::map<std::string, std::string> opts;
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
    const char* positional;  // usage text of the positional arguments (all are ids)
    int min_ids;
    int max_ids;             // -1: unlimited
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
    auto t = text(name);
    if (!t) return std::nullopt;
    return parse_int(*t);  // validated while parsing
}

template <class T>
Outcome from(cdp::Result<T>&& r, json (*to_output)(T&)) {
    if (!r.ok()) return Outcome{std::nullopt, std::move(r.error)};
    return Outcome{to_output(*r.value), std::nullopt};
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
const OptSpec kPage{"--page", OptKind::integer, "N", "page number, from 1 (default 1)"};
const OptSpec kSize{"--size", OptKind::integer, "N", "records a page (default cdp.page_size)"};
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
    auto r = co_await c.api.for_each_member_page(group, std::move(on_page));
    if (!r.ok()) {
        if (!first) out << std::endl;
        co_return Outcome{std::nullopt, std::move(r.error)};
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

const std::vector<CommandSpec>& commands() {
    static const std::vector<CommandSpec> table = {
        {"groups", "list", "", 0, 0, {{"--search", OptKind::text, "K", "name contains K"}, kFolder, kAll, kPage, kSize},
         "list customer groups (simpleQuery)", groups_list},
        {"groups", "create", "", 0, 0, {{"--name", OptKind::text, "N", "group name", true}, kDescription, kFolder},
         "create a static group (addSingleGroup); prints its id", groups_create},
        {"groups", "update", "ID", 1, 1, {{"--name", OptKind::text, "N", "new name"}, kDescription, kFolder},
         "change a group's name, description or folder (updateCustomerGroup)", groups_update},
        {"groups", "delete", "ID", 1, 1, {}, "delete a group and its memberships (deleteCustomerGroup)", groups_delete},
        {"folders", "tree", "", 0, 0, {}, "the folder tree (queryTreeFormList)", folders_tree},
        {"folders", "add", "", 0, 0,
         {{"--name", OptKind::text, "N", "folder name", true}, {"--parent", OptKind::text, "CODE", "parent folder code"}},
         "add a folder (group/add); prints its id", folders_add},
        {"folders", "update", "ID", 1, 1, {{"--name", OptKind::text, "N", "new name", true}},
         "rename a folder (group/update)", folders_update},
        {"folders", "delete", "ID", 1, 1, {}, "delete an empty folder (group/delete)", folders_delete},
        {"members", "list", "GROUP_ID", 1, 1, {kAll, kPage, kSize},
         "a group's members (getCustomerPageByGroupId); --all streams one JSON array", members_list},
        {"members", "add", "CUSTOMER_ID GROUP_ID...", 2, -1, {}, "add a customer to groups (customerAddGroups)",
         members_add},
        {"members", "remove", "CUSTOMER_ID GROUP_ID...", 2, -1, {},
         "remove a customer from groups (customerDeleteGroups)", members_remove},
        {"members", "set", "CUSTOMER_ID GROUP_ID...", 1, -1, {},
         "replace ALL static groups of a customer (customerUpdateGroups)", members_set},
        {"customer", "groups", "CUSTOMER_ID", 1, 1,
         {{"--type", OptKind::group_type, "static|smart", "group type (default static)"}},
         "the groups a customer is in (getGroupsByCustomerId)", customer_groups},
    };
    return table;
}

std::string usage_line(const CommandSpec& c) {
    std::string s = std::string("cdp-sync [--config FILE] api ") + c.noun + " " + c.verb;
    if (*c.positional) s += std::string(" ") + c.positional;
    for (const auto& o : c.options) {
        std::string opt = o.name;
        if (o.value_name) opt += std::string(" ") + o.value_name;
        s += o.required ? " " + opt : " [" + opt + "]";
    }
    return s;
}

void print_overview(std::ostream& os, const std::string& noun) {
    os << "Usage: cdp-sync [--config FILE] api [--verbose] " << (noun.empty() ? "NOUN" : noun)
       << " VERB [ARGS...]\n\nOne call of the CDP open API; prints JSON on stdout.\n"
          "Exit status: 0 success, 1 the call failed (one line on stderr), 2 usage or configuration error.\n\n";
    for (const auto& c : commands()) {
        if (!noun.empty() && noun != c.noun) continue;
        const std::string usage = usage_line(c);
        os << "  " << usage.substr(usage.find(" api ") + 5) << "\n      " << c.summary << "\n";
    }
    os << "\nRun 'cdp-sync api NOUN VERB --help' for the options of one command.\n";
}

void print_command_help(std::ostream& os, const CommandSpec& c) {
    os << "Usage: " << usage_line(c) << "\n\n" << c.summary << "\n";
    if (!c.options.empty()) os << "\nOptions:\n";
    for (const auto& o : c.options) {
        std::string left = o.name;
        if (o.value_name) left += std::string(" ") + o.value_name;
        left.resize(std::max<size_t>(left.size() + 2, 22), ' ');
        os << "  " << left << o.help << (o.required ? " (required)" : "") << "\n";
    }
}

bool is_help(const std::string& a) { return a == "--help" || a == "-h"; }

Invocation parse_invocation(const CommandSpec& c, const Args& args, size_t from) {
    Invocation inv;
    for (size_t i = from; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.size() > 1 && a[0] == '-' && !parse_int(a)) {
            std::string name = a, value;
            bool inline_value = false;
            if (auto eq = a.find('='); eq != std::string::npos) {
                name = a.substr(0, eq);
                value = a.substr(eq + 1);
                inline_value = true;
            }
            const OptSpec* spec = nullptr;
            for (const auto& o : c.options)
                if (name == o.name) spec = &o;
            if (!spec) throw UsageError("unknown option " + name);
            if (spec->kind == OptKind::flag) {
                if (inline_value) throw UsageError(name + " takes no value");
            } else if (!inline_value) {
                if (i + 1 >= args.size()) throw UsageError(name + " needs a value " + spec->value_name);
                value = args[++i];
            }
            if (spec->kind == OptKind::integer && !parse_int(value))
                throw UsageError(name + " needs an integer, got '" + value + "'");
            if (spec->kind == OptKind::group_type && value != "static" && value != "smart")
                throw UsageError(name + " must be static or smart, got '" + value + "'");
            inv.opts[name] = value;
            continue;
        }
        auto id = parse_int(a);
        if (!id) throw UsageError(std::string("expected an id (integer), got '") + a + "'");
        inv.ids.push_back(*id);
    }
    const int n = static_cast<int>(inv.ids.size());
    if (n < c.min_ids || (c.max_ids >= 0 && n > c.max_ids))
        throw UsageError(std::string("wrong number of arguments; usage: ") + usage_line(c));
    for (const auto& o : c.options)
        if (o.required && !inv.has(o.name)) throw UsageError(std::string(o.name) + " is required");
    for (const char* positive : {"--page", "--size"})
        if (auto v = inv.integer(positive); v && *v < 1) throw UsageError(std::string(positive) + " must be >= 1");
    return inv;
}

std::string one_line(std::string s) {
    for (auto& ch : s)
        if (ch == '\n' || ch == '\r') ch = ' ';
    return s;
}

int run(const GlobalOptions& global, const CommandSpec& spec, const Invocation& inv, bool verbose) {
    config::Config cfg;
    try {
        cfg = config::load_file(config::default_path(global.config_path));
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync api: " << one_line(e.what()) << std::endl;
        return kExitUsage;
    }
    // stderr is for the one-line outcome; --verbose shows warnings and each retry.
    logging::init_stderr(verbose ? "debug" : "error");

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
        std::cerr << "cdp-sync api: " << one_line(outcome.error->describe()) << std::endl;
        return kExitFailure;
    }
    if (outcome.output) std::cout << outcome.output->dump(2) << std::endl;
    return kExitOk;
}

}  // namespace

int api_command(const GlobalOptions& global, const Args& args) {
    size_t i = 0;
    bool verbose = false;
    for (; i < args.size() && !args[i].empty() && args[i][0] == '-'; ++i) {
        if (is_help(args[i])) {
            print_overview(std::cout, "");
            return kExitOk;
        }
        if (args[i] == "--verbose" || args[i] == "-v") {
            verbose = true;
            continue;
        }
        std::cerr << "cdp-sync api: unknown option " << args[i] << " (see cdp-sync api --help)" << std::endl;
        return kExitUsage;
    }
    if (i >= args.size()) {
        print_overview(std::cerr, "");
        return kExitUsage;
    }
    const std::string noun = args[i];
    bool known_noun = false;
    for (const auto& c : commands()) known_noun = known_noun || noun == c.noun;
    if (!known_noun) {
        std::cerr << "cdp-sync api: unknown command '" << noun << "' (see cdp-sync api --help)" << std::endl;
        return kExitUsage;
    }
    if (i + 1 >= args.size() || is_help(args[i + 1])) {
        print_overview(i + 1 >= args.size() ? std::cerr : std::cout, noun);
        return i + 1 >= args.size() ? kExitUsage : kExitOk;
    }
    const std::string verb = args[i + 1];
    const CommandSpec* spec = nullptr;
    for (const auto& c : commands())
        if (noun == c.noun && verb == c.verb) spec = &c;
    if (!spec) {
        std::cerr << "cdp-sync api: unknown command '" << noun << " " << verb << "' (see cdp-sync api " << noun
                  << " --help)" << std::endl;
        return kExitUsage;
    }
    for (size_t k = i + 2; k < args.size(); ++k) {
        if (is_help(args[k])) {
            print_command_help(std::cout, *spec);
            return kExitOk;
        }
    }
    Invocation inv;
    try {
        inv = parse_invocation(*spec, args, i + 2);
    } catch (const UsageError& e) {
        std::cerr << "cdp-sync api " << noun << " " << verb << ": " << e.what() << std::endl;
        return kExitUsage;
    }
    try {
        return run(global, *spec, inv, verbose);
    } catch (const std::exception& e) {
        std::cerr << "cdp-sync api: " << one_line(e.what()) << std::endl;
        return kExitFailure;
    }
}

}  // namespace cdpsync::cli
