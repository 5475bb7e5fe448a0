// The warm pool's rules, without actors: what to boot when, what a create
// takes, what gives way.
#include "actors/warm_pool.hpp"

#include <gtest/gtest.h>

namespace sandboxd {
namespace {

bool any(const std::string&) { return true; }

TEST(WarmPool, BootsOneAtATimeTheEmptiestTemplateFirst) {
  warm_pool p{{{"base", 2}, {"code", 1}, {"off", 0}}};
  auto first = p.next(0, 100, 0, any);
  ASSERT_EQ(first, std::optional<std::string>{"base"});
  p.boot_started();
  EXPECT_FALSE(p.next(0, 100, 0, any)) << "a second boot while one is under way";
  p.boot_done(*first, "a");
  auto second = p.next(0, 100, 0, any);
  EXPECT_EQ(second, std::optional<std::string>{"code"}) << "the empty template before the half-full one";
  p.boot_started();
  p.boot_done("code", "b");
  EXPECT_EQ(p.next(0, 100, 0, any), std::optional<std::string>{"base"});
  p.boot_started();
  p.boot_done("base", "c");
  EXPECT_FALSE(p.next(0, 100, 0, any)) << "every template is full";
  EXPECT_FALSE(p.short_of_target());
  EXPECT_EQ(p.ready(), 3u);
  EXPECT_EQ(p.ready_by_template(), (std::map<std::string, uint64_t>{{"base", 2}, {"code", 1}}));
}

TEST(WarmPool, WaitsForCreatesForCapacityAndAfterAFailure) {
  warm_pool p{{{"base", 2}}};
  p.create_started(0);
  EXPECT_FALSE(p.next(0, 100, 0, any)) << "never while a create is under way";
  p.create_done();
  EXPECT_FALSE(p.next(0, 100, warm_pool::quiet_ms - 1, any)) << "nor right after one";
  EXPECT_EQ(p.rests_for(warm_pool::quiet_ms - 1), 1);
  EXPECT_TRUE(p.next(0, 100, warm_pool::quiet_ms, any));
  EXPECT_FALSE(p.next(100, 100, warm_pool::quiet_ms, any)) << "the host is full";
  EXPECT_FALSE(p.next(0, 100, warm_pool::quiet_ms, [](const std::string&) { return false; })) << "not built";
  p.boot_started();
  p.boot_failed(1000);
  EXPECT_EQ(p.rests_for(1000), warm_pool::backoff_ms);
  EXPECT_FALSE(p.next(0, 100, 1000 + warm_pool::backoff_ms - 1, any));
  EXPECT_TRUE(p.next(0, 100, 1000 + warm_pool::backoff_ms, any));
  p.boot_started();
  p.boot_done("base", "a");
  EXPECT_FALSE(p.next(99, 100, 1000 + warm_pool::backoff_ms, any))
    << "warm sandboxes count against the limit";
}

TEST(WarmPool, TakesTheOldestAndGivesWayFromTheFullest) {
  warm_pool p{{{"base", 3}, {"code", 3}}};
  for (auto id : {"b1", "b2", "b3"}) {
    p.boot_started();
    p.boot_done("base", id);
  }
  p.boot_started();
  p.boot_done("code", "c1");
  EXPECT_EQ(p.take("base"), std::optional<std::string>{"b1"});
  EXPECT_EQ(p.take("nosuch"), std::nullopt);
  EXPECT_EQ(p.give_way(), std::optional<std::string>{"b3"});
  EXPECT_EQ(p.give_way(), std::optional<std::string>{"b2"}) << "base 1, code 1: either; base first";
  EXPECT_EQ(p.give_way(), std::optional<std::string>{"c1"});
  EXPECT_EQ(p.give_way(), std::nullopt);
}

TEST(WarmPool, DrainHandsBackEverythingAndStopsRefilling) {
  warm_pool p{{{"base", 2}}};
  p.boot_started();
  p.boot_done("base", "a");
  auto gone = p.drain();
  EXPECT_EQ(gone, std::vector<std::string>{"a"});
  EXPECT_EQ(p.ready(), 0u);
  EXPECT_TRUE(p.draining());
  EXPECT_FALSE(p.next(0, 100, 0, any));
}

} // namespace
} // namespace sandboxd
