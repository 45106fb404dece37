// The store's connections (keepalives, statement_timeout) and the RAII apply lock.
#include "store/connection.hpp"
#include "store/session.hpp"
#include "sync_fixture.hpp"

namespace cdpsync::testing {
namespace {

TEST(StoreConnection, KeepalivesAreAddedUnlessTheDsnSetsThem) {
    EXPECT_EQ(store::with_keepalives("host=db dbname=x"),
              "host=db dbname=x keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3");
    EXPECT_EQ(store::with_keepalives(""), "keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3");
    EXPECT_EQ(store::with_keepalives("postgresql://u@db/x"),
              "postgresql://u@db/x?keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_count=3");
    EXPECT_EQ(store::with_keepalives("postgres://u@db/x?sslmode=require"),
              "postgres://u@db/x?sslmode=require&keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_count=3");
    EXPECT_EQ(store::with_keepalives("host=db keepalives=0"), "host=db keepalives=0");
}

TEST(StoreConnection, StatementTimeoutIsSetUnlessTheDsnChoseOne) {
    const std::string dsn = test_dsn();
    ASSERT_FALSE(dsn.empty()) << "CDP_SYNC_TEST_DSN is not set";
    store::Connection engine(dsn);
    EXPECT_EQ(engine.setting("statement_timeout"), "10min");
    store::Connection daemon(dsn, std::chrono::seconds(30));
    EXPECT_EQ(daemon.setting("statement_timeout"), "30s");
    store::Connection own(dsn + " options='-c statement_timeout=5s'");
    EXPECT_EQ(own.setting("statement_timeout"), "5s");
}

TEST_F(SyncTest, ApplyLockIsHeldWhileItLivesAndReleasedAfterAnException) {
    store::Session a(dsn, schema);
    store::Session b(dsn, schema);
    a.migrate();
    {
        auto lock = a.lock_apply();
        ASSERT_TRUE(lock);
        EXPECT_FALSE(b.lock_apply()) << "a second writer got the lock";
    }
    EXPECT_TRUE(b.lock_apply()) << "not released when the lock went out of scope";
    try {
        auto lock = a.lock_apply();
        ASSERT_TRUE(lock);
        throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {
    }
    auto again = b.lock_apply();
    EXPECT_TRUE(again) << "an exception leaked the lock";
}

}  // namespace
}  // namespace cdpsync::testing
