#include "daemon/check.hpp"

#include <unistd.h>

#include <utility>  // before awaitable.hpp (GCC 12)

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <fmt/format.h>

#include "cdp/api.hpp"
#include "config/config.hpp"
#include "config/text.hpp"
#include "config/token.hpp"
#include "store/control.hpp"
#include "store/status.hpp"
#include "store/session.hpp"
#include "sync/identity.hpp"

namespace cdpsync::daemon {
namespace {

namespace net = boost::asio;

struct Report {
    std::ostream& out;
    int failed = 0;
    void ok(const std::string& what) { out << "ok    " << what << "\n"; }
    void fail(const std::string& what) {
        out << "FAIL  " << what << "\n";
        ++failed;
    }
    void warn(const std::string& what) { out << "warn  " << what << "\n"; }
};

// Confirms on the live CDP that member records are read for customer ids (sync/identity.hpp)
// and stores the confirmation, which a run needs before its first removal.
// A coroutine's value into `out` (co_spawn's value handler needs a default-constructible
// value, which cdp::Result is not).
template <class T>
net::awaitable<void> store_into(net::awaitable<T> task, std::optional<T>& out) {
    T value = co_await std::move(task);
    out.emplace(std::move(value));
}

void check_identity(Report& r, const config::Config& cfg, cdp::Api& api, net::io_context& io) {
    std::optional<store::Session> st;
    std::vector<store::ManagedGroup> groups;
    try {
        st.emplace(cfg.database.dsn, cfg.database.schema);
        st->migrate();
        for (const auto& [name, g] : st->groups.group_map())
            if (g.group_id && g.type == cdp::kStaticGroup) groups.push_back({name, *g.group_id});
    } catch (const std::exception& e) {
        r.fail("member identity: cannot read the group map: " + text::one_line(e.what()));
        return;
    }
    std::optional<sync::IdentityCheck> result;
    std::exception_ptr error;
    net::co_spawn(io, sync::check_member_identity(api, groups, cfg.cdp.customer_id_field),
                  [&](std::exception_ptr e, sync::IdentityCheck c) {
                      error = e;
                      if (!e) result = std::move(c);
                  });
    io.restart();
    io.run();
    if (error) std::rethrow_exception(error);
    switch (result->outcome) {
    case sync::IdentityCheck::Outcome::confirmed:
        st->mirror.confirm_identity(sync::identity_setting(cfg.cdp.customer_id_field), result->field, result->group_id,
                             result->customer_ids);
        r.ok(result->describe());
        break;
    case sync::IdentityCheck::Outcome::no_sample:
        r.warn(result->describe() + " (a run confirms it before its first removal)");
        break;
    default: r.fail(result->describe());
    }
}

void check_log_directory(Report& r, const config::Config& cfg) {
    if (cfg.logging.file.empty()) return;
    auto dir = std::filesystem::path(cfg.logging.file).parent_path();
    if (dir.empty()) dir = ".";
    if (::access(dir.c_str(), W_OK) == 0) r.ok("log directory " + dir.string() + " is writable");
    else r.fail("log directory " + dir.string() + " is not writable by this user (logging.file)");
}

void check_postgres(Report& r, const config::Config& cfg) {
    const std::string dsn = store::redact_dsn(cfg.database.dsn);
    try {
        auto conn = store::connect_control(cfg.database.dsn, "cdp-sync check");
        const auto& schema = cfg.database.schema;
        const auto facts = store::server_facts(*conn, schema);
        r.ok(fmt::format("PostgreSQL {} reachable ({}) as user {} in database {}", facts.version, dsn, facts.user,
                         facts.database));
        if (!facts.can_create)
            r.fail(fmt::format("user cannot create tables in schema {} (grant CREATE on the {})", schema,
                               facts.schema_exists ? "schema" : "database"));
        else
            r.ok(fmt::format("schema {} {}", schema, facts.schema_exists ? "exists and is writable" : "will be created on the first run"));
        // The run's own validation: check accepts exactly the queries a run accepts.
        for (const auto& q : store::check_source_queries(*conn, cfg.database)) {
            if (q.problem.empty()) r.ok(q.key + " runs as a sync would run it");
            else r.fail(fmt::format("{} does not run: {}", q.key, q.problem));
        }
    } catch (const std::exception& e) {
        r.fail(fmt::format("cannot connect to PostgreSQL ({}): {}", dsn, text::one_line(e.what())));
    }
}

// One CDP call (the group list), then the member identity; a failure says what to look at.
void check_cdp(Report& r, const config::Config& cfg, const config::TokenSource& tokens) {
    try {
        net::io_context io;
        auto options = cdp::ApiOptions::from_config(cfg.cdp);
        options.retry.max_attempts = 1;
        cdp::Api api(io.get_executor(), options, tokens);
        std::optional<cdp::Result<cdp::Page<cdp::Group>>> result;
        std::exception_ptr error;
        cdp::GroupQuery query;
        query.size = 1;
        net::co_spawn(io, store_into(api.query_groups(query), result), [&](std::exception_ptr e) { error = e; });
        io.run();
        if (error) std::rethrow_exception(error);
        if (result->has_value()) {
            r.ok(fmt::format("CDP at {} answered: {} customer group(s) visible to this token", cfg.cdp.base_url,
                             result->value().total));
            check_identity(r, cfg, api, io);
        } else {
            const auto& e = result->error();
            std::string why = e.describe();
            if (e.kind == cdp::CallError::Kind::auth)
                why += "; the CDP refused the token from " + tokens.describe();
            else if (e.kind == cdp::CallError::Kind::transport)
                why += "; check cdp.base_url, the network, a proxy, and cdp.ca_file for TLS";
            r.fail("CDP call failed: " + why);
        }
    } catch (const std::exception& e) {
        r.fail("CDP call failed: " + text::one_line(e.what()));
    }
}

}  // namespace

int run_checks(const std::filesystem::path& path, std::ostream& out) {
    Report r{out};
    config::Config cfg;
    try {
        cfg = config::load_file(path);
        r.ok("configuration " + path.string() + " is valid");
    } catch (const std::exception& e) {
        r.fail("configuration: " + text::one_line(e.what()));
        return 2;
    }
    check_log_directory(r, cfg);
    check_postgres(r, cfg);

    // The token, then one CDP call.
    config::TokenSource tokens(cfg.cdp);
    try {
        auto t = tokens.read();
        if (t.empty()) r.fail("the token from " + tokens.describe() + " is empty");
        else r.ok("token read from " + tokens.describe());
    } catch (const std::exception& e) {
        r.fail("no token: " + text::one_line(e.what()));
        out << (r.failed ? "\n" + std::to_string(r.failed) + " check(s) failed\n" : "");
        return 1;
    }
    check_cdp(r, cfg, tokens);
    if (r.failed) out << "\n" << r.failed << " check(s) failed\n";
    else out << "\nall checks passed\n";
    return r.failed ? 1 : 0;
}

}  // namespace cdpsync::daemon
