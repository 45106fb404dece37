// The pagers (for_each_member_page, query_all_groups): windowed fetching delivered in page
// order, servers that cap the page size, totals that change while paging, resuming, errors.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>

#include "api_test_util.hpp"

namespace cdpsync::cdp {
namespace {

using test::fail_body;
using test::fast_options;
using test::Harness;
using test::ok_body;
using cdpsync::testing::TestRequest;
using cdpsync::testing::TestResponse;
using cdpsync::testing::TestServer;

std::map<std::string, std::string> query_of(const std::string& target) {
    std::map<std::string, std::string> q;
    const auto start = target.find('?');
    if (start == std::string::npos) return q;
    std::string rest = target.substr(start + 1);
    size_t pos = 0;
    while (pos < rest.size()) {
        auto amp = rest.find('&', pos);
        if (amp == std::string::npos) amp = rest.size();
        const std::string kv = rest.substr(pos, amp - pos);
        const auto eq = kv.find('=');
        q[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
        pos = amp + 1;
    }
    return q;
}

// A paging endpoint over a list of ids that a test may change while it is being paged.
struct PagingServer {
    std::mutex mu;
    std::vector<int64_t> ids;
    int64_t cap = 1000;                 // the server's own page size limit
    std::optional<int64_t> stale_total;  // report this total instead of the real one
    std::function<void(int64_t page, std::vector<int64_t>& ids)> before_page;  // runs under mu
    std::map<int64_t, TestResponse> page_override;
    std::chrono::milliseconds delay{0};
    const char* id_key = "id";
    TestServer server;

    explicit PagingServer(int64_t n) : ids(n), server({}, [this](const TestRequest& r) { return handle(r); }) {
        std::iota(ids.begin(), ids.end(), 1);
    }

    TestResponse handle(const TestRequest& r) {
        auto q = query_of(r.target);
        const int64_t current = std::stoll(q["current"]);
        const int64_t size = std::min<int64_t>(std::stoll(q["size"]), cap);
        std::lock_guard lock(mu);
        if (auto it = page_override.find(current); it != page_override.end()) return it->second;
        if (before_page) before_page(current, ids);
        json records = json::array();
        for (int64_t i = (current - 1) * size; i < std::min<int64_t>(current * size, ids.size()); ++i)
            records.push_back(json{{id_key, ids[i]}, {"name", "n" + std::to_string(ids[i])}});
        const int64_t total = stale_total.value_or(static_cast<int64_t>(ids.size()));
        TestResponse resp;
        resp.body = ok_body(json{{"current", current}, {"size", size}, {"total", total}, {"records", records}});
        resp.delay = delay;
        return resp;
    }

    std::vector<std::pair<int64_t, int64_t>> asked() {  // (current, size) of every request
        std::vector<std::pair<int64_t, int64_t>> out;
        for (const auto& r : server.requests()) {
            auto q = query_of(r.target);
            out.emplace_back(std::stoll(q["current"]), std::stoll(q["size"]));
        }
        std::sort(out.begin(), out.end());
        return out;
    }
};

struct Collected {
    std::vector<int64_t> pages;
    std::vector<int64_t> ids;
    Api::MemberPageHandler handler() {
        return [this](int64_t n, Page<Member>&& p) {
            pages.push_back(n);
            for (const auto& m : p.records) ids.push_back(m.customer_id);
        };
    }
};

std::vector<int64_t> range(int64_t from, int64_t to) {
    std::vector<int64_t> v(to - from + 1);
    std::iota(v.begin(), v.end(), from);
    return v;
}

TEST(ApiPager, DeliversEveryPageInOrderWithSeveralInFlight) {
    PagingServer ps(95);
    ps.delay = std::chrono::milliseconds(30);
    auto options = fast_options(ps.server.base_url());
    options.page_size = 10;
    options.max_pages_in_flight = 4;
    Harness h(options);
    Collected c;
    auto r = h.run(h.api.for_each_member_page(7, c.handler()));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(c.pages, range(1, 10));
    EXPECT_EQ(c.ids, range(1, 95));
    EXPECT_EQ(ps.server.requests().size(), 10u);
    EXPECT_LE(ps.server.max_concurrent_requests(), 4);
    EXPECT_GE(ps.server.max_concurrent_requests(), 2);
}

TEST(ApiPager, OneAtATimeWhenTheWindowIsOne) {
    PagingServer ps(35);
    ps.delay = std::chrono::milliseconds(5);
    auto options = fast_options(ps.server.base_url());
    options.max_pages_in_flight = 1;
    Harness h(options);
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler())).has_value());
    EXPECT_EQ(c.ids, range(1, 35));
    EXPECT_EQ(ps.server.max_concurrent_requests(), 1);
}

TEST(ApiPager, ServerCapSmallerThanAskedIsDetectedFromPageOne) {
    PagingServer ps(23);
    ps.cap = 4;
    auto options = fast_options(ps.server.base_url());
    options.page_size = 10;
    Harness h(options);
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler())).has_value());
    EXPECT_EQ(c.ids, range(1, 23));
    EXPECT_EQ(c.pages, range(1, 6));
    // Page 1 asked for 10, later pages for the 4 the server gives.
    EXPECT_EQ(ps.asked(), (std::vector<std::pair<int64_t, int64_t>>{{1, 10}, {2, 4}, {3, 4}, {4, 4}, {5, 4}, {6, 4}}));
}

TEST(ApiPager, TotalGrowingWhilePagingIsFollowedToTheEnd) {
    PagingServer ps(25);
    ps.before_page = [](int64_t page, std::vector<int64_t>& ids) {
        if (page == 3 && ids.size() == 25)
            for (int64_t i = 26; i <= 32; ++i) ids.push_back(i);
    };
    auto options = fast_options(ps.server.base_url());
    options.max_pages_in_flight = 1;  // page 3 is fetched after page 2 was read
    Harness h(options);
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler())).has_value());
    EXPECT_EQ(c.ids, range(1, 32));
    EXPECT_EQ(c.pages, range(1, 4));
}

TEST(ApiPager, StaleTotalWithAFullLastPageKeepsGoingToAShortPage) {
    PagingServer ps(25);
    ps.stale_total = 17;  // two pages by the total, but page 2 is full past it: there is a third
    Harness h(fast_options(ps.server.base_url()));
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler())).has_value());
    EXPECT_EQ(c.ids, range(1, 25));
}

TEST(ApiPager, AbsurdTotalFromTheWireEndsAtTheShortPageWithoutOverflow) {
    PagingServer ps(25);
    ps.stale_total = std::numeric_limits<int64_t>::max();
    auto options = fast_options(ps.server.base_url());
    options.max_pages_in_flight = 2;
    Harness h(options);
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler())).has_value());
    EXPECT_EQ(c.ids, range(1, 25));
}

TEST(ApiPager, ExactlyFullPagesEndAtTheTotalWithoutAnEmptyRead) {
    PagingServer ps(30);
    Harness h(fast_options(ps.server.base_url()));
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler())).has_value());
    EXPECT_EQ(c.ids, range(1, 30));
    EXPECT_EQ(c.pages, range(1, 3));
    EXPECT_EQ(ps.asked(), (std::vector<std::pair<int64_t, int64_t>>{{1, 10}, {2, 10}, {3, 10}}));
}

TEST(ApiPager, GrowingGroupWithAFullPageAtTheOldTotalKeepsGoing) {
    PagingServer ps(30);
    ps.before_page = [](int64_t page, std::vector<int64_t>& ids) {
        if (page == 3 && ids.size() == 30) ids.push_back(31);  // page 3's reply counts 31
    };
    Harness h(fast_options(ps.server.base_url()));
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler())).has_value());
    EXPECT_EQ(c.ids, range(1, 31));
    EXPECT_EQ(c.pages, range(1, 4));
}

TEST(ApiPager, TotalShrinkingWhilePagingStopsAtTheShortPage) {
    PagingServer ps(60);
    ps.before_page = [](int64_t page, std::vector<int64_t>& ids) {
        if (page >= 2 && ids.size() == 60) ids.resize(15);
    };
    auto options = fast_options(ps.server.base_url());
    options.max_pages_in_flight = 3;
    Harness h(options);
    Collected c;
    auto r = h.run(h.api.for_each_member_page(7, c.handler()));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(c.pages, range(1, 2));
    EXPECT_EQ(c.ids, range(1, 15));
}

TEST(ApiPager, EmptyGroupDeliversOneEmptyFirstPage) {
    PagingServer ps(0);
    Harness h(fast_options(ps.server.base_url()));
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler())).has_value());
    EXPECT_EQ(c.pages, std::vector<int64_t>{1});
    EXPECT_TRUE(c.ids.empty());
    EXPECT_EQ(ps.server.requests().size(), 1u);
}

TEST(ApiPager, ResumesFromAGivenPage) {
    PagingServer ps(45);
    Harness h(fast_options(ps.server.base_url()));
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler(), 3)).has_value());
    EXPECT_EQ(c.pages, range(3, 5));
    EXPECT_EQ(c.ids, range(21, 45));
    for (const auto& [page, size] : ps.asked()) EXPECT_GE(page, 3);
}

TEST(ApiPager, ResumingOnACappedServerUsesTheCappedPageSize) {
    PagingServer ps(23);
    ps.cap = 4;
    Harness h(fast_options(ps.server.base_url()));  // asks 10
    Collected c;
    ASSERT_TRUE(h.run(h.api.for_each_member_page(7, c.handler(), 3)).has_value());
    EXPECT_EQ(c.pages, range(3, 6));
    EXPECT_EQ(c.ids, range(9, 23));  // page 3 of 4-record pages starts at the 9th
}

TEST(ApiPager, AFailedPageEndsThePagingWithItsErrorAndLeavesNothingRunning) {
    PagingServer ps(100);
    ps.delay = std::chrono::milliseconds(10);
    TestResponse bad;
    bad.status = 400;
    bad.body = fail_body("页码错误");
    ps.page_override[4] = bad;
    auto options = fast_options(ps.server.base_url());
    options.max_pages_in_flight = 3;
    Harness h(options);
    Collected c;
    auto r = h.run(h.api.for_each_member_page(7, c.handler()));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().http_status, 400u);
    EXPECT_EQ(r.error().endpoint, path::members_page);
    EXPECT_EQ(c.pages, range(1, 3));
    // run() returned only once every spawned fetch had finished; none is sent later.
    const size_t sent = ps.server.requests().size();
    h.io.restart();
    h.io.run_for(std::chrono::milliseconds(50));
    EXPECT_EQ(ps.server.requests().size(), sent);
}

TEST(ApiPager, AnExceptionFromTheHandlerPropagates) {
    PagingServer ps(100);
    Harness h(fast_options(ps.server.base_url()));
    int seen = 0;
    auto handler = [&](int64_t n, Page<Member>&&) {
        ++seen;
        if (n == 2) throw std::runtime_error("disk full");
    };
    EXPECT_THROW(h.run(h.api.for_each_member_page(7, handler)), std::runtime_error);
    EXPECT_EQ(seen, 2);
}

TEST(ApiPager, QueryAllGroupsUsesTheSamePagerAndDropsShiftedDuplicates) {
    PagingServer ps(25);
    // Before page 2 a group is inserted at the front: the 10th id shifts onto page 2.
    ps.before_page = [](int64_t page, std::vector<int64_t>& ids) {
        if (page == 2 && ids.front() != 0) ids.insert(ids.begin(), 0);
    };
    auto options = fast_options(ps.server.base_url());
    options.max_pages_in_flight = 1;
    Harness h(options);
    auto r = h.run(h.api.query_all_groups("x", 3));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    std::vector<int64_t> ids;
    for (const auto& g : r.value()) ids.push_back(g.id);
    EXPECT_EQ(ids, range(1, 25));  // 10 appears once; 0 came too late to be seen
    const auto q = query_of(ps.server.requests()[0].target);
    EXPECT_EQ(q.at("searchKey"), "x");
    EXPECT_EQ(q.at("groupId"), "3");
}

}  // namespace
}  // namespace cdpsync::cdp
