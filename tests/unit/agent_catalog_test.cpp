#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "runtime/agent_catalog.hpp"

using namespace sandboxd;

namespace {

std::string write_temp(const std::string& text) {
  char path[] = "/tmp/agents-test-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  std::ofstream{path} << text;
  return path;
}

} // namespace

TEST(agent_catalog, the_shipped_catalogue_loads_and_validates_models) {
  auto cat = agent_catalog::load(SANDBOXD_SOURCE_DIR "/ops/agents.json");
  ASSERT_TRUE(cat) << cat.error().message;
  auto claude = cat->find("claude-code");
  ASSERT_TRUE(claude);
  EXPECT_EQ(claude->key_env, "ANTHROPIC_API_KEY");
  EXPECT_FALSE(claude->command.empty());
  EXPECT_TRUE(agent_catalog::check_model(*claude, "claude-sonnet-4-5"));
  EXPECT_TRUE(agent_catalog::check_model(*claude, "")) << "claude-code has a default model";
  EXPECT_EQ(agent_catalog::check_model(*claude, "gpt-4o").error().status, 400);
  auto codex = cat->find("codex");
  ASSERT_TRUE(codex);
  for (auto m : {"gpt-5", "o3-mini", "o4-mini", "o-series"})
    EXPECT_TRUE(agent_catalog::check_model(*codex, m)) << m;
  for (auto m : {"claude-x", "omni", "g"})
    EXPECT_FALSE(agent_catalog::check_model(*codex, m)) << m;
  auto deictic = cat->find("deictic");
  ASSERT_TRUE(deictic);
  EXPECT_TRUE(deictic->command.empty());
  EXPECT_FALSE(deictic->unavailable_reason.empty());
  EXPECT_EQ(agent_catalog::check_model(*deictic, "").error().status, 400);
  EXPECT_EQ(cat->find("nope").error().status, 501);
  auto keys = cat->key_envs();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "OPENAI_API_KEY"), keys.end());
}

TEST(agent_catalog, bad_files_name_themselves) {
  EXPECT_FALSE(agent_catalog::load("/nonexistent/agents.json"));
  auto bad = write_temp("{not json");
  auto r = agent_catalog::load(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(bad), std::string::npos);
  auto no_key = write_temp(R"({"agents": {"x": {"command": "true"}}})");
  EXPECT_FALSE(agent_catalog::load(no_key));
  auto defaults = write_temp(R"({"agents": {"x": {"command": "true", "key_env": "K"}}})");
  auto ok = agent_catalog::load(defaults);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->find("x")->cancel_grace_s, 10);
  EXPECT_TRUE(agent_catalog::check_model(*ok->find("x"), "anything"));
  for (auto& p : {bad, no_key, defaults})
    std::remove(p.c_str());
}
