// The snapshot's SQL on its own (store/mirror.cpp), against a real PostgreSQL: pages committed
// with their cursors (one statement a batch of consecutive pages, page by page otherwise) and
// a finished group's mirror replaced by what its pages listed.
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "store_fixture.hpp"

namespace cdpsync::testing {
namespace {

constexpr int64_t kSnap = 7, kA = 10, kB = 11;
using Ids = std::vector<int64_t>;
using PageRows = store::Mirror::PageRows;

class SnapshotStore : public StoreTest {
protected:
    void SetUp() override {
        StoreTest::SetUp();
        if (IsSkipped()) return;
        s->mirror.snapshot_begin(kSnap, {kA, kB}, 2);
    }

    int64_t staged(int64_t group) {
        return pg_scalar(dsn, "SELECT count(*) FROM " + schema + ".snapshot_member WHERE group_id = " +
                                  std::to_string(group));
    }
    int64_t next_page(int64_t group) { return s->mirror.snapshot_cursors(kSnap).at(group).next_page; }
    int64_t mirrored(int64_t group, int64_t customer) {
        return pg_scalar(dsn, "SELECT count(*) FROM " + schema + ".remote_member WHERE group_id = " +
                                  std::to_string(group) + " AND customer_id = " + std::to_string(customer));
    }
};

TEST_F(SnapshotStore, ABatchOfConsecutivePagesMovesEachGroupsCursorPastIt) {
    const std::vector<PageRows> batch{{kSnap, kA, 1, {1, 2}}, {kSnap, kB, 1, {5}},  {kSnap, kA, 2, {3, 4}},
                                      {kSnap, kA, 3, {}},     {kSnap, kB, 2, {6, 7}}};
    EXPECT_EQ(s->mirror.snapshot_pages(batch), 5);
    EXPECT_EQ(next_page(kA), 4);
    EXPECT_EQ(next_page(kB), 3);
    EXPECT_EQ(staged(kA), 4);
    EXPECT_EQ(staged(kB), 3);
}

TEST_F(SnapshotStore, PagesBehindTheCursorAreNotWrittenAgain) {
    ASSERT_EQ(s->mirror.snapshot_pages({{kSnap, kA, 1, {1, 2}}}), 1);
    // Page 1 again (committed already), then 2: only 2 is taken.
    EXPECT_EQ(s->mirror.snapshot_pages({{kSnap, kA, 1, {1, 2}}, {kSnap, kA, 2, {3}}}), 1);
    EXPECT_EQ(next_page(kA), 3);
    EXPECT_EQ(staged(kA), 3);
    // A run entirely behind or ahead of the cursor takes nothing.
    EXPECT_EQ(s->mirror.snapshot_pages({{kSnap, kA, 1, {9}}, {kSnap, kA, 2, {9}}}), 0);
    EXPECT_EQ(s->mirror.snapshot_pages({{kSnap, kA, 5, {9}}}), 0);
    EXPECT_EQ(staged(kA), 3);
}

TEST_F(SnapshotStore, PagesOutOfOrderAreTakenPageByPage) {
    // 2 before 1: page 2 is not at the cursor when it comes, page 1 is.
    EXPECT_EQ(s->mirror.snapshot_pages({{kSnap, kA, 2, {3}}, {kSnap, kA, 1, {1}}}), 1);
    EXPECT_EQ(next_page(kA), 2);
    EXPECT_EQ(staged(kA), 1);
}

TEST_F(SnapshotStore, FinishingAGroupLeavesTheMirrorEqualToThePagesRead) {
    pg_exec(dsn, "INSERT INTO " + schema + ".remote_member VALUES (10, 1), (10, 2), (10, 3), (11, 2)");
    // Customer 3 left, 4 joined, 2 is listed twice (the listing shifted).
    ASSERT_EQ(s->mirror.snapshot_pages({{kSnap, kA, 1, {1, 2}}, {kSnap, kA, 2, {2, 4}}}), 2);
    EXPECT_EQ(s->mirror.snapshot_finish_group(kSnap, kA), 3);
    EXPECT_EQ(mirrored(kA, 1), 1);
    EXPECT_EQ(mirrored(kA, 2), 1);
    EXPECT_EQ(mirrored(kA, 3), 0);
    EXPECT_EQ(mirrored(kA, 4), 1);
    EXPECT_EQ(mirrored(kB, 2), 1) << "another group's mirror was touched";
    EXPECT_EQ(staged(kA), 0);
    EXPECT_TRUE(s->mirror.snapshot_cursors(kSnap).at(kA).done);
}

TEST_F(SnapshotStore, AnEmptyReadEmptiesTheGroupsMirror) {
    pg_exec(dsn, "INSERT INTO " + schema + ".remote_member VALUES (10, 1), (10, 2)");
    ASSERT_EQ(s->mirror.snapshot_pages({{kSnap, kA, 1, {}}}), 1);
    EXPECT_EQ(s->mirror.snapshot_finish_group(kSnap, kA), 0);
    EXPECT_EQ(mirrored(kA, 1) + mirrored(kA, 2), 0);
}

}  // namespace
}  // namespace cdpsync::testing
