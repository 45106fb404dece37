// A step that ends the run early says why as a type (sync::Abort::Cause), not only as text:
// the groups step when the CDP's group list cannot be read, the apply when an outage opens
// the circuit breaker. Driven step by step over a real PostgreSQL and the simulator.
#include <utility>  // before awaitable.hpp (GCC 12)

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "store/session.hpp"
#include "sync/steps.hpp"
#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

namespace net = boost::asio;

class AbortTest : public SyncTest {
protected:
    // `step(steps)` to completion on a fresh io_context, over this test's schema.
    template <class T, class Step>
    T drive(store::Session& session, Step step) {
        net::io_context io;
        sync::DbLane lane(session);
        cdp::Api api(io.get_executor(), cdp::ApiOptions::from_config(cfg.cdp), config::TokenSource(cfg.cdp));
        sync::Steps steps{cfg, *spdlog::default_logger(), session, lane, api};
        std::optional<T> out;
        std::exception_ptr error;
        net::co_spawn(io, step(steps), [&](std::exception_ptr e, T value) {
            error = e;
            if (!e) out = std::move(value);
        });
        io.run();
        lane.wait_idle();
        if (error) std::rethrow_exception(error);
        return std::move(*out);
    }

    void fail_every_call_to(const std::string& endpoint) {
        sim::FaultConfig fc;
        fc.endpoints[endpoint].error_5xx_probability = 1.0;
        server->faults().configure(fc);
    }
};

TEST_F(AbortTest, AnUnreadableGroupListAbortsTheGroupsStepAsGroupsUnlisted) {
    desire({{1, "a"}, {2, "a"}});
    store::Session session(dsn, schema);
    session.migrate();
    session.source.load_source(cfg.database);
    sim::FaultConfig fc;
    fc.global.error_5xx_probability = 1.0;
    server->faults().configure(fc);

    auto g = drive<sync::GroupsResult>(session, [](sync::Steps& s) { return s.resolve_groups(true, false); });
    ASSERT_TRUE(g.fatal);
    EXPECT_EQ(g.fatal->cause, sync::Abort::Cause::groups_unlisted);
    EXPECT_NE(g.fatal->message.find("listing the CDP's groups failed"), std::string::npos) << g.fatal->message;
    EXPECT_TRUE(g.managed.empty());
}

TEST_F(AbortTest, AnOutageAbortsTheApplyAsCdpDownAndLeavesTheRestPending) {
    const int64_t group = server->state().add_group("a");
    store::Session session(dsn, schema);
    session.migrate();
    const int64_t run = session.runs.create_run(store::RunMode::incremental, false);
    const int ops = 3 * sync::kOutageAfterSameFailures;
    exec("INSERT INTO " + schema + ".op (run_id, customer_id, kind, group_ids) SELECT " + std::to_string(run) +
         ", c, 'add', ARRAY[" + std::to_string(group) + "]::bigint[] FROM generate_series(1, " + std::to_string(ops) +
         ") c");
    fail_every_call_to("customerAddGroups");

    auto a = drive<sync::ApplyResult>(session, [run](sync::Steps& s) { return s.apply(run); });
    ASSERT_TRUE(a.aborted);
    EXPECT_EQ(a.aborted->cause, sync::Abort::Cause::cdp_down);
    EXPECT_NE(a.aborted->message.find("the CDP looks down"), std::string::npos) << a.aborted->message;
    EXPECT_EQ(session.cdp.cdp_state().breaker, store::Breaker::open);
    EXPECT_GT(session.journal.op_totals(run).pending, 0);
}

TEST_F(AbortTest, AnApplyThatTriesEveryOpIsNotAborted) {
    const int64_t group = server->state().add_group("a");
    store::Session session(dsn, schema);
    session.migrate();
    const int64_t run = session.runs.create_run(store::RunMode::incremental, false);
    exec("INSERT INTO " + schema + ".op (run_id, customer_id, kind, group_ids) SELECT " + std::to_string(run) +
         ", c, 'add', ARRAY[" + std::to_string(group) + "]::bigint[] FROM generate_series(1, 5) c");

    auto a = drive<sync::ApplyResult>(session, [run](sync::Steps& s) { return s.apply(run); });
    EXPECT_FALSE(a.aborted) << a.aborted->message;
    EXPECT_EQ(session.journal.op_totals(run).done, 5);
}

}  // namespace
}  // namespace cdpsync::testing
