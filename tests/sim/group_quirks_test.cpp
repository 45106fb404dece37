// The groups quirks over real loopback HTTP: duplicate names, a create answered late, groups
// listed without a type or with an unknown one, groups a listing leaves out.
#include <chrono>

#include <gtest/gtest.h>

#include "sim/server.hpp"
#include "sim_client.hpp"

namespace cdpsync::sim {
namespace {

using nlohmann::json;

class SimGroupQuirks : public ::testing::Test {
protected:
    void SetUp() override {
        server = std::make_unique<Server>(ServerOptions{});
        server->start();
        client = std::make_unique<test::Client>(server->port());
    }
    void quirk(const std::string& flag) {
        Quirks q = server->state().quirks();
        q.set_flag(flag);
        server->state().set_quirks(q);
    }
    json create(const std::string& name) {
        return client->cdp_post("/customer-group/addSingleGroup", {{"name", name}, {"type", 1}});
    }
    std::unique_ptr<Server> server;
    std::unique_ptr<test::Client> client;
};

TEST_F(SimGroupQuirks, DuplicateNamesAreAcceptedOnlyWhenAsked) {
    ASSERT_EQ(create("twin")["code"], 0);
    EXPECT_EQ(create("twin")["msg"], "群组名称已存在");
    quirk("groups.duplicate_names=true");
    EXPECT_EQ(create("twin")["code"], 0);
    EXPECT_EQ(server->state().find_groups_by_name("twin").size(), 2u);
}

TEST_F(SimGroupQuirks, CreateIsAppliedBeforeItsLateReply) {
    quirk("groups.create_reply_delay_ms=400");
    const auto start = std::chrono::steady_clock::now();
    json r = create("late");
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));
    ASSERT_EQ(r["code"], 0) << r;
    json f = client->cdp_post("/group/add", {{"businessType", "customer_group"}, {"name", "late-folder"}});
    ASSERT_EQ(f["code"], 0) << f;
    EXPECT_EQ(server->state().find_groups_by_name("late").size(), 1u);
}

TEST_F(SimGroupQuirks, GroupsListedWithoutTypeOrWithAnUnknownOne) {
    server->state().add_group("plain");
    server->state().add_group("untyped");
    server->state().add_group("odd");
    quirk(R"(groups.missing_type=["untyped"])");
    quirk(R"(groups.unknown_type=["odd"])");
    json page = client->cdp_get("/customer-group/simpleQuery?current=1&size=10");
    ASSERT_EQ(page["code"], 0) << page;
    std::map<std::string, json> by_name;
    for (const auto& g : page["data"]["records"]) by_name[g["name"]] = g;
    EXPECT_EQ(by_name.at("plain")["type"], 1);
    EXPECT_FALSE(by_name.at("untyped").contains("type"));
    EXPECT_EQ(by_name.at("odd")["type"], 3);
}

TEST_F(SimGroupQuirks, UnlistedGroupsAreCountedInTheListingsTotalButFoundOnlyBySearch) {
    server->state().add_group("plain");
    server->state().add_group("hidden");
    quirk(R"(groups.unlisted=["hidden"])");
    json page = client->cdp_get("/customer-group/simpleQuery?current=1&size=10");
    ASSERT_EQ(page["code"], 0) << page;
    EXPECT_EQ(page["data"]["total"], 2);
    ASSERT_EQ(page["data"]["records"].size(), 1u);
    EXPECT_EQ(page["data"]["records"][0]["name"], "plain");
    json search = client->cdp_get("/customer-group/simpleQuery?current=1&size=10&searchKey=hidden");
    ASSERT_EQ(search["data"]["records"].size(), 1u) << search;
    EXPECT_EQ(search["data"]["records"][0]["name"], "hidden");
}

}  // namespace
}  // namespace cdpsync::sim
