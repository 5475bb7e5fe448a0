// What the actor tests share: a catalogue with one "built" template, tiny,
// whose root the fake runtime never reads, and a registry's config over a
// fake runtime.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "actors/registry.hpp"
#include "runtime/templates.hpp"
#include "storage/store.hpp"
#include "tests/unit/fake_runtime.hpp"

namespace sandboxd {

// Writes the catalogue into `dir` and marks tiny built.
inline void install_tiny_template(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream{dir + "/templates.json"}
    << R"({"templates": [{"name": "tiny", "packages": ["bash"]}]})";
  auto catalog = template_catalog::load(dir + "/templates.json", dir + "/cache");
  ASSERT_TRUE(catalog) << catalog.error().message;
  auto spec = catalog->find("tiny");
  ASSERT_TRUE(spec);
  auto root = catalog->rootfs(*spec);
  std::filesystem::create_directories(root);
  std::ofstream{std::filesystem::path{root}.parent_path() / "template.json"} << "{}";
  ASSERT_TRUE(catalog->is_built(*spec));
}

// A sandbox of org "org" from tiny, ended by its TTL after `timeout_s`.
inline create_spec tiny_spec(int64_t timeout_s = 300) {
  create_spec s;
  s.org_id = "org";
  s.template_id = "tiny";
  s.timeout_s = timeout_s;
  return s;
}

// A registry over `rt` and the catalogue in `dir`; listings render ids.
inline registry_config test_registry_config(const std::string& dir, std::shared_ptr<store> db,
                                            std::shared_ptr<fake_runtime> rt, event_log_actor log,
                                            std::chrono::milliseconds metrics_interval) {
  auto catalog = template_catalog::load(dir + "/templates.json", dir + "/cache");
  EXPECT_TRUE(catalog) << catalog.error().message;
  registry_config rcfg;
  rcfg.db = std::move(db);
  rcfg.runtime = std::move(rt);
  rcfg.templates = std::make_shared<const template_catalog>(std::move(*catalog));
  rcfg.log = std::move(log);
  rcfg.metrics_interval = metrics_interval;
  rcfg.render = [](const sandbox_record& r) { return r.id; };
  return rcfg;
}

} // namespace sandboxd
