// Tags of an org's template (E2B's): "name:tag" references, which build a
// tag names, moving and taking tags, the routes' bodies and what is stored.
#include <gtest/gtest.h>

#include "core/code_template.hpp"
#include "core/template_tags.hpp"
#include "core/user_template.hpp"
#include "tests/unit/stored_copy.hpp"

using namespace sandboxd;
using json = nlohmann::json;

namespace {

template_build build(const std::string& id, build_status s, int64_t at,
                     std::vector<std::string> tags = {}) {
  template_build b;
  b.id = id;
  b.template_id = "t";
  b.org_id = "o";
  b.status = s;
  b.created_ms = at;
  b.finished_ms = at + 1;
  b.tags = std::move(tags);
  return b;
}

const template_build* by_id(const std::vector<template_build>& v, const std::string& id) {
  for (auto& b : v)
    if (b.id == id)
      return &b;
  return nullptr;
}

} // namespace

TEST(TemplateTags, ReferenceSplitsAtTheFirstColonAndDefaultsToDefault) {
  auto plain = split_template_ref("web");
  EXPECT_EQ(plain.name, "web");
  EXPECT_EQ(plain.tag, "default");
  EXPECT_FALSE(plain.tagged);
  auto tagged = split_template_ref("web:v1.2");
  EXPECT_EQ(tagged.name, "web");
  EXPECT_EQ(tagged.tag, "v1.2");
  EXPECT_TRUE(tagged.tagged);
  EXPECT_EQ(split_template_ref("web:").tag, "");
}

TEST(TemplateTags, ValidTagIsExposedForEveryRoute) {
  EXPECT_TRUE(valid_tag("v1"));
  EXPECT_TRUE(valid_tag("Prod_2.x-y"));
  EXPECT_FALSE(valid_tag(""));
  EXPECT_FALSE(valid_tag("-v1"));
  EXPECT_FALSE(valid_tag("a b"));
  EXPECT_FALSE(valid_tag("a:b"));
  EXPECT_FALSE(valid_tag(std::string(129, 'a')));
}

// Only a ready build holds tags: a build under way only asked for them, a
// failed one has none; the newest holder wins over records older than tags.
TEST(TemplateTags, ATagNamesTheReadyBuildHoldingIt) {
  std::vector<template_build> builds = {
    build("b4", build_status::building, 4, {"v1"}),
    build("b3", build_status::error, 3, {"v3"}),
    build("b2", build_status::ready, 2, {"v2", "default"}),
    build("b1", build_status::ready, 1, {"v1", "default"}),
  };
  ASSERT_TRUE(tagged_build(builds, "v1"));
  EXPECT_EQ(tagged_build(builds, "v1")->id, "b1");
  EXPECT_EQ(tagged_build(builds, "v2")->id, "b2");
  EXPECT_EQ(tagged_build(builds, "default")->id, "b2");
  EXPECT_FALSE(tagged_build(builds, "v3"));
  EXPECT_FALSE(tagged_build(builds, "nope"));
}

// "default" held by no build (templates of packages, builds before tags):
// the newest ready build, as before tags.
TEST(TemplateTags, DefaultHeldByNoneIsTheNewestReadyBuild) {
  std::vector<template_build> builds = {
    build("b3", build_status::waiting, 3),
    build("b2", build_status::ready, 2, {"v2"}),
    build("b1", build_status::ready, 1),
  };
  EXPECT_EQ(tagged_build(builds, "default")->id, "b2");
  EXPECT_FALSE(tagged_build({build("b1", build_status::error, 1)}, "default"));
  EXPECT_FALSE(tagged_build({}, "default"));
}

// A tag is unique within a template: giving it to a build takes it from
// the other ready builds; a build under way keeps what it asked for.
TEST(TemplateTags, MovingATagTakesItFromTheOtherBuilds) {
  std::vector<template_build> builds = {
    build("b3", build_status::building, 3, {"prod"}),
    build("b2", build_status::ready, 2, {"v2", "default"}),
    build("b1", build_status::ready, 1, {"v1", "prod"}),
  };
  builds[2].tag_times = {{"v1", 10}, {"prod", 11}};
  auto changed = move_tags(builds, builds[1], {"prod", "v2", "prod"}, 50);
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0].id, "b2");
  EXPECT_EQ(changed[0].tags, (std::vector<std::string>{"v2", "default", "prod"}));
  EXPECT_EQ(changed[0].tag_times.at("prod"), 50);
  EXPECT_EQ(changed[0].tag_times.at("v2"), 50);
  auto* b1 = by_id(changed, "b1");
  ASSERT_TRUE(b1);
  EXPECT_EQ(b1->tags, std::vector<std::string>{"v1"});
  EXPECT_EQ(b1->tag_times, (std::map<std::string, int64_t>{{"v1", 10}}));
  EXPECT_FALSE(by_id(changed, "b3"));
  // A tag it holds already keeps the time it came.
  auto again = move_tags(changed, changed[0], {"prod"}, 99);
  EXPECT_EQ(again[0].tag_times.at("prod"), 50);
  EXPECT_EQ(again.size(), 1u);
}

// A build that ends ready takes the tags it asked for (finish moves them
// with the build's own record as `to`, not yet ready in the list).
TEST(TemplateTags, AReadyBuildTakesTheTagsItAskedFor) {
  std::vector<template_build> builds = {
    build("b2", build_status::building, 2, {"default", "v2"}),
    build("b1", build_status::ready, 1, {"default", "v1"}),
  };
  auto done = builds[0];
  done.status = build_status::ready;
  auto changed = move_tags(builds, done, done.tags, 7);
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0].tags, (std::vector<std::string>{"default", "v2"}));
  EXPECT_EQ(changed[0].tag_times.size(), 2u);
  EXPECT_EQ(changed[1].tags, std::vector<std::string>{"v1"});
}

TEST(TemplateTags, TakingATagNoBuildHoldsIsA404AndChangesNothing) {
  std::vector<template_build> builds = {
    build("b2", build_status::waiting, 2, {"prod"}),
    build("b1", build_status::ready, 1, {"v1", "prod"}),
  };
  auto missing = take_tags(builds, {"prod", "staging"}, "web");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().status, 404);
  EXPECT_NE(missing.error().message.find("staging"), std::string::npos);
  auto taken = take_tags(builds, {"prod"}, "web");
  ASSERT_TRUE(taken) << taken.error().message;
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_EQ(taken->front().id, "b1");
  EXPECT_EQ(taken->front().tags, std::vector<std::string>{"v1"});
}

TEST(TemplateTags, TheTemplatesCopyOfItsReadyBuildFollows) {
  user_template t;
  t.ready = build("b1", build_status::ready, 1, {"v1"});
  auto b1 = *t.ready;
  b1.tags = {};
  refresh_ready(t, {build("b0", build_status::ready, 0, {"x"}), b1});
  EXPECT_TRUE(t.ready->tags.empty());
  user_template none;
  refresh_ready(none, {b1});
  EXPECT_FALSE(none.ready);
}

// E2B's TemplateTag list: ready builds' tags, by tag, with when each came.
TEST(TemplateTags, ListShowsEveryHeldTagWithItsBuildAndTime) {
  std::vector<template_build> builds = {
    build("b3", build_status::building, 3000, {"v3"}),
    build("b2", build_status::ready, 2000, {"v2", "default"}),
    build("b1", build_status::ready, 1000, {"v1"}),
  };
  builds[1].tag_times = {{"v2", 5000}};
  auto j = tags_json(builds);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["tag"], "default");
  EXPECT_EQ(j[0]["buildID"], "b2");
  EXPECT_EQ(j[0]["createdAt"], "1970-01-01T00:00:02.001Z"); // no time kept: when it was ready
  EXPECT_EQ(j[1]["tag"], "v1");
  EXPECT_EQ(j[1]["buildID"], "b1");
  EXPECT_EQ(j[2]["tag"], "v2");
  EXPECT_EQ(j[2]["createdAt"], "1970-01-01T00:00:05.000Z");
}

TEST(TemplateTags, AssignmentBodyNamesABuildAndTags) {
  auto a = parse_tag_assignment({{"target", "web:v1"}, {"tags", {"prod", "stable"}}});
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->target.name, "web");
  EXPECT_EQ(a->target.tag, "v1");
  EXPECT_EQ(a->tags, (std::vector<std::string>{"prod", "stable"}));
  auto plain = parse_tag_assignment({{"target", "web"}, {"tags", {"prod"}}});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->target.tag, "default");
  for (auto body : {json{{"tags", {"prod"}}}, json{{"target", "web"}},
                    json{{"target", "web"}, {"tags", json::array()}},
                    json{{"target", "web"}, {"tags", {"a b"}}},
                    json{{"target", "web:-x"}, {"tags", {"prod"}}},
                    json{{"target", ":v1"}, {"tags", {"prod"}}},
                    json{{"target", 3}, {"tags", {"prod"}}}, json::array()}) {
    auto r = parse_tag_assignment(body);
    ASSERT_FALSE(r) << body.dump();
    EXPECT_EQ(r.error().status, 400) << body.dump();
  }
}

TEST(TemplateTags, RemovalBodyNamesATemplateAndTags) {
  auto r = parse_tag_removal({{"name", "web"}, {"tags", {"prod"}}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->name, "web");
  EXPECT_EQ(r->tags, std::vector<std::string>{"prod"});
  EXPECT_EQ(parse_tag_removal({{"tags", {"prod"}}}).error().status, 400);
  EXPECT_EQ(parse_tag_removal({{"name", "web"}}).error().status, 400);
  EXPECT_EQ(parse_tag_removal({{"name", "web"}, {"tags", {"x y"}}}).error().status, 400);
}

// fromTemplate("name:tag") keeps its tag: the build starts from that build.
TEST(TemplateTags, FromTemplateKeepsItsTag) {
  auto r = parse_template_steps({{"fromTemplate", "mine:v1"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->from_template, "mine:v1");
  EXPECT_EQ(parse_template_steps({{"fromTemplate", "mine:a b"}}).error().status, 400);
}

// Any build may hold tags (one of packages too), with when each came.
TEST(TemplateTags, StoredBuildsKeepTheirTagsAndTimes) {
  auto b = build("b1", build_status::ready, 1, {"prod"});
  b.hash = "h";
  b.tag_times = {{"prod", 42}};
  auto back = stored_copy(b);
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->code);
  EXPECT_EQ(back->tags, std::vector<std::string>{"prod"});
  EXPECT_EQ(back->tag_times, (std::map<std::string, int64_t>{{"prod", 42}}));
}
