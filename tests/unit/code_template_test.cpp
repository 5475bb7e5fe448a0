// Templates defined in code: what the SDK's requests may hold, how steps
// change the build's context, the cache keys, and the stored build.
#include <gtest/gtest.h>

#include "core/code_template.hpp"
#include "core/user_template.hpp"
#include "tests/unit/stored_copy.hpp"

using namespace sandboxd;
using json = nlohmann::json;

namespace {

json step(const std::string& type, std::vector<std::string> args, std::string hash = "") {
  json j = {{"type", type}, {"args", args}, {"force", false}};
  if (!hash.empty())
    j["filesHash"] = hash;
  return j;
}

const std::string hash64(64, 'a');

} // namespace

TEST(CodeTemplate, RequestTakesANameWithATag) {
  auto r = parse_code_template_request({{"name", "web:v2"}, {"cpuCount", 2}}, "org");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->name, "web");
  EXPECT_EQ(r->tags, std::vector<std::string>{"v2"});
  EXPECT_EQ(r->cpu_count, 2);
  auto plain = parse_code_template_request({{"name", "web"}}, "org");
  EXPECT_EQ(plain->tags, std::vector<std::string>{"default"});
}

TEST(CodeTemplate, RequestRefusesWhatIsNotATemplate) {
  EXPECT_EQ(parse_code_template_request({{"name", "Bad Name"}}, "o").error().status, 400);
  EXPECT_EQ(parse_code_template_request(json::object(), "o").error().status, 400);
  EXPECT_EQ(parse_code_template_request({{"name", "x"}, {"memoryMB", 1}}, "o").error().status, 400);
  EXPECT_EQ(parse_code_template_request({{"name", "x"}, {"tags", {"a b"}}}, "o").error().status,
            400);
  EXPECT_EQ(parse_code_template_request({{"name", "x"}, {"what", 1}}, "o").error().status, 400);
}

TEST(CodeTemplate, StepsParse) {
  json body = {{"fromTemplate", "base"},
               {"steps",
                {step("ENV", {"A", "1"}), step("RUN", {"echo hi", "root"}),
                 step("COPY", {"src", "/dst/", "", "0755"}, hash64), step("WORKDIR", {"/app"}),
                 step("USER", {"user"})}},
               {"startCmd", "python3 -m http.server"},
               {"readyCmd", "true"},
               {"force", false}};
  auto r = parse_template_steps(body);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->from_template, "base");
  ASSERT_EQ(r->steps.size(), 5u);
  EXPECT_EQ(r->steps[2].files_hash, hash64);
  EXPECT_EQ(r->start_cmd, "python3 -m http.server");
}

TEST(CodeTemplate, StepsRefuseBadShapes) {
  auto bad = [](json steps) {
    auto r = parse_template_steps({{"fromTemplate", "base"}, {"steps", steps}});
    return !r && r.error().status == 400;
  };
  EXPECT_TRUE(bad({step("FROB", {"x"})}));
  EXPECT_TRUE(bad({step("RUN", {})}));
  EXPECT_TRUE(bad({step("RUN", {"x", "Not A User"})}));
  EXPECT_TRUE(bad({step("COPY", {"src", "/d"}, "short")}));
  EXPECT_TRUE(bad({step("COPY", {"/etc/passwd", "/d"}, hash64)}));
  EXPECT_TRUE(bad({step("COPY", {"../up", "/d"}, hash64)}));
  EXPECT_TRUE(bad({step("COPY", {"*.txt;rm", "/d"}, hash64)}));
  EXPECT_TRUE(bad({step("COPY", {"a", "/d", "", "999"}, hash64)}));
  EXPECT_TRUE(bad({step("ENV", {"A"})}));
  EXPECT_TRUE(bad({step("ENV", {"1A", "x"})}));
  EXPECT_TRUE(bad({step("USER", {"root; rm"})}));
  json many = json::array();
  for (size_t i = 0; i <= max_template_steps; ++i)
    many.push_back(step("RUN", {"true"}));
  EXPECT_TRUE(bad(many));
  // Exactly one base.
  EXPECT_FALSE(parse_template_steps({{"steps", json::array()}}));
  EXPECT_FALSE(parse_template_steps({{"fromTemplate", "base"}, {"fromImage", "debian"}}));
  // A registry's credentials are refused, never stored.
  auto reg = parse_template_steps(
    {{"fromImage", "debian:bookworm"}, {"fromImageRegistry", {{"type", "registry"}}}});
  ASSERT_FALSE(reg);
  EXPECT_EQ(reg.error().status, 400);
}

TEST(CodeTemplate, ImagesMapToDebianTemplatesOrAreRefusedWithTheChoices) {
  EXPECT_EQ(*template_for_image("e2bdev/base"), "base");
  EXPECT_EQ(*template_for_image("debian:bookworm"), "base");
  EXPECT_EQ(*template_for_image("python:3.11"), "base");
  EXPECT_EQ(*template_for_image("node:18"), "base");
  auto no = template_for_image("ubuntu:22.04");
  ASSERT_FALSE(no);
  EXPECT_EQ(no.error().status, 400);
  EXPECT_NE(no.error().message.find("fromDebianImage"), std::string::npos);
  EXPECT_FALSE(template_for_image("python:3.13"));
  EXPECT_FALSE(template_for_image("node:lts"));
}

TEST(CodeTemplate, ContextFollowsEnvWorkdirAndUser) {
  build_context c;
  EXPECT_EQ(c.user, "user");
  EXPECT_EQ(c.workdir, "/home/user");
  apply_step(c, {"ENV", {"A", "1", "B", "2"}, "", false});
  apply_step(c, {"WORKDIR", {"/app"}, "", false});
  apply_step(c, {"WORKDIR", {"sub"}, "", false});
  apply_step(c, {"USER", {"root"}, "", false});
  apply_step(c, {"RUN", {"true"}, "", false});
  EXPECT_EQ(c.env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "2"}}));
  EXPECT_EQ(c.workdir, "/app/sub");
  EXPECT_EQ(c.user, "root");
  EXPECT_TRUE(changes_files({"RUN", {"x"}, "", false}));
  EXPECT_TRUE(changes_files({"COPY", {"a", "b"}, hash64, false}));
  EXPECT_FALSE(changes_files({"ENV", {"a", "b"}, "", false}));
}

TEST(CodeTemplate, CacheKeysChainEveryStepBefore) {
  std::vector<template_step> a = {{"RUN", {"one"}, "", false}, {"RUN", {"two"}, "", false}};
  auto b = a;
  b[1].args = {"three"};
  auto ka = step_keys("base:1", a), kb = step_keys("base:1", b);
  EXPECT_EQ(ka[0], kb[0]);
  EXPECT_NE(ka[1], kb[1]);
  EXPECT_NE(step_keys("base:2", a)[0], ka[0]);
  // Arguments are kept apart: ["a b"] is not ["a", "b"].
  EXPECT_NE(step_keys("x", {{"RUN", {"a b"}, "", false}})[0],
            step_keys("x", {{"RUN", {"a", "b"}, "", false}})[0]);
  // A COPY's files are part of it.
  EXPECT_NE(step_keys("x", {{"COPY", {"a", "b"}, hash64, false}})[0],
            step_keys("x", {{"COPY", {"a", "b"}, std::string(64, 'b'), false}})[0]);
}

TEST(CodeTemplate, ReadyPortOfWaitForPort) {
  EXPECT_EQ(ready_port_of("[ -n \"$(ss -Htuln sport = :8000)\" ]"), 8000);
  EXPECT_EQ(ready_port_of("ss -tuln | grep :3000"), 3000);
  EXPECT_EQ(ready_port_of("curl localhost:8000"), 0);
}

TEST(CodeTemplate, ShellQuoteSurvivesQuotes) {
  EXPECT_EQ(shell_quote("a'b"), "'a'\\''b'");
  EXPECT_EQ(shell_quote(""), "''");
}

TEST(CodeTemplate, BuildWithStepsSurvivesStorage) {
  template_build b;
  b.id = "b";
  b.template_id = "t";
  b.org_id = "o";
  b.hash = "h";
  b.code = true;
  b.snapshot_id = "snap";
  b.failed_step = "3";
  b.tags = {"v1"};
  b.steps = *parse_template_steps(
    {{"fromTemplate", "base"}, {"steps", {step("RUN", {"echo"})}}, {"readyCmd", "true"}});
  auto back = stored_copy(b);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->code);
  ASSERT_TRUE(back->steps);
  EXPECT_EQ(back->steps->steps.at(0).args, std::vector<std::string>{"echo"});
  EXPECT_EQ(back->steps->ready_cmd, "true");
  EXPECT_EQ(back->snapshot_id, "snap");
  EXPECT_EQ(back->failed_step, "3");
  EXPECT_EQ(back->tags, std::vector<std::string>{"v1"});
  // A build of packages stores none of it.
  template_build p;
  p.id = "p";
  p.hash = "h";
  auto plain = stored_copy(p);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->steps);
  EXPECT_FALSE(plain->code);
}

namespace sandboxd {
namespace {

// The resources a build in code asked for are on its record: a restart
// between the request and its steps keeps them.
TEST(CodeTemplateRecord, AskedResourcesAreStored) {
  template_build b;
  b.id = "b";
  b.template_id = "t";
  b.org_id = "o";
  b.code = true;
  b.asked_cpu = 4;
  auto back = stored_copy(b);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->asked_cpu, 4);
  EXPECT_FALSE(back->asked_memory_mb);
  b.asked_cpu.reset();
  b.asked_memory_mb = 2048;
  back = stored_copy(b);
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->asked_cpu);
  EXPECT_EQ(back->asked_memory_mb, 2048);
}

} // namespace
} // namespace sandboxd
