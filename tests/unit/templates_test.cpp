// runtime/templates: the catalogue file (inheritance, aliases, the spec
// hash, validation), the mmdebstrap command a build runs and what counts as
// built, from temporary files only: nothing is built here.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>

#include "runtime/templates.hpp"
#include "tests/unit/stored_copy.hpp"

namespace fs = std::filesystem;
using namespace sandboxd;

namespace {

class TemplateCatalog : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sandboxd-templates-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    // A mount a failed test left in its directory, then the directory.
    std::ifstream mounts{"/proc/self/mounts"};
    std::string dev, target, rest;
    while (mounts >> dev >> target && std::getline(mounts, rest))
      if (target.rfind(dir_ + "/", 0) == 0)
        ::umount2(target.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& json) {
    auto path = dir_ + "/templates-" + std::to_string(n_++) + ".json";
    std::ofstream out{path};
    out << json;
    return path;
  }

  result<template_catalog> load(const std::string& json) {
    return template_catalog::load(write(json), dir_ + "/cache");
  }

  std::string dir_;
  int n_ = 0;
};

const char* family = R"({
  "suite": "bookworm",
  "mirror": "http://deb.debian.org/debian",
  "templates": [
    {"name": "base", "aliases": ["standard"], "description": "root",
     "packages": ["python3", "bash"], "env": {"LANG": "C.UTF-8", "A": "1"},
     "cpu_count": 2, "memory_mb": 512},
    {"name": "agent", "extends": "base", "packages": ["nodejs", "npm", "bash"],
     "run": ["npm install -g x@1", "x --version"], "env": {"A": "2", "B": "b"},
     "memory_mb": 2048},
    {"name": "browser", "aliases": ["web", "chrome"], "extends": "agent",
     "packages": ["chromium"], "run": ["echo 'it''s' > /etc/x"]},
    {"name": "cua", "extends": "browser", "cpu_count": 4},
    {"name": "canvas", "extends": "cua"}
  ]
})";

TEST_F(TemplateCatalog, ExtendsInheritsPackagesRunEnvAndResources) {
  auto cat = load(family);
  ASSERT_TRUE(cat.ok()) << cat.error().message;
  ASSERT_EQ(cat->all().size(), 5u);

  auto base = cat->find("base");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->extends, "");
  EXPECT_EQ(base->packages, (std::vector<std::string>{"bash", "python3"}));
  EXPECT_TRUE(base->run.empty());
  EXPECT_EQ(base->cpu_count, 2);
  EXPECT_EQ(base->memory_mb, 512);

  auto agent = cat->find("agent");
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(agent->extends, "base");
  // The parent's packages plus its own, sorted, each once.
  EXPECT_EQ(agent->packages, (std::vector<std::string>{"bash", "nodejs", "npm", "python3"}));
  EXPECT_EQ(agent->run, (std::vector<std::string>{"npm install -g x@1", "x --version"}));
  // Its own env wins over the parent's; the rest is inherited.
  EXPECT_EQ(agent->env, (std::map<std::string, std::string>{
                          {"A", "2"}, {"B", "b"}, {"LANG", "C.UTF-8"}}));
  EXPECT_EQ(agent->cpu_count, 2);    // inherited
  EXPECT_EQ(agent->memory_mb, 2048); // its own

  auto browser = cat->find("browser");
  ASSERT_TRUE(browser.ok());
  // The parent's run steps first, then its own.
  EXPECT_EQ(browser->run, (std::vector<std::string>{"npm install -g x@1", "x --version",
                                                    "echo 'it''s' > /etc/x"}));
  EXPECT_EQ(browser->memory_mb, 2048); // from agent, two levels up the chain
  EXPECT_EQ(browser->env.at("B"), "b");
  EXPECT_TRUE(std::count(browser->packages.begin(), browser->packages.end(), "chromium"));
  EXPECT_TRUE(std::count(browser->packages.begin(), browser->packages.end(), "python3"));

  auto cua = cat->find("cua");
  ASSERT_TRUE(cua.ok());
  EXPECT_EQ(cua->cpu_count, 4);
  EXPECT_EQ(cua->memory_mb, 2048);
  EXPECT_EQ(cua->packages, browser->packages);
  EXPECT_EQ(cua->run, browser->run);
  // Aliases are names of their own template, never inherited.
  EXPECT_TRUE(cua->aliases.empty());
  // Same root filesystem, same hash: only resources and names differ.
  EXPECT_EQ(cua->hash, browser->hash);
  EXPECT_EQ(cat->find("canvas")->hash, cua->hash);
  EXPECT_NE(cat->rootfs(*cat->find("canvas")), cat->rootfs(*cua));
}

TEST_F(TemplateCatalog, DefaultResourcesWithoutParent) {
  auto cat = load(R"({"templates": [{"name": "t", "packages": ["bash"]}]})");
  ASSERT_TRUE(cat.ok()) << cat.error().message;
  auto t = cat->find("t");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->cpu_count, 2);
  EXPECT_EQ(t->memory_mb, 512);
  EXPECT_TRUE(t->aliases.empty());
  EXPECT_TRUE(t->run.empty());
}

TEST_F(TemplateCatalog, FindByNameOrAlias) {
  auto cat = load(family);
  ASSERT_TRUE(cat.ok()) << cat.error().message;
  auto standard = cat->find("standard");
  ASSERT_TRUE(standard.ok());
  EXPECT_EQ(standard->name, "base");
  EXPECT_EQ(standard->aliases, (std::vector<std::string>{"standard"}));
  EXPECT_EQ(cat->find("web")->name, "browser");
  EXPECT_EQ(cat->find("chrome")->name, "browser");
  EXPECT_EQ(cat->find("browser")->name, "browser");
  auto missing = cat->find("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().status, 400);
  EXPECT_EQ(missing.error().message, "unknown template: nope");
  // A template may extend its parent by an alias too.
  auto via_alias = load(R"({"templates": [
    {"name": "base", "aliases": ["standard"], "packages": ["bash"]},
    {"name": "child", "extends": "standard", "packages": ["curl"]}]})");
  ASSERT_TRUE(via_alias.ok()) << via_alias.error().message;
  EXPECT_EQ(via_alias->find("child")->extends, "base");
}

TEST_F(TemplateCatalog, HashFollowsWhatTheRootFilesystemIsMadeOf) {
  auto hash_of = [&](const std::string& json, const std::string& name) {
    auto cat = load(json);
    EXPECT_TRUE(cat.ok()) << (cat.ok() ? "" : cat.error().message);
    return cat.ok() ? cat->find(name)->hash : std::string{};
  };
  auto one = [](const std::string& run, const std::string& extra) {
    return R"({"templates": [{"name": "base", "packages": ["bash"]},
      {"name": "agent", "extends": "base", "packages": ["npm"], "run": )" + run + extra + "}]}";
  };
  auto h = hash_of(one(R"(["npm i -g a@1", "a --version"])", ""), "agent");
  EXPECT_EQ(h.size(), 16u);
  EXPECT_EQ(hash_of(one(R"(["npm i -g a@1", "a --version"])", ""), "agent"), h);
  // A changed, added, removed or reordered step is another template.
  EXPECT_NE(hash_of(one(R"(["npm i -g a@2", "a --version"])", ""), "agent"), h);
  EXPECT_NE(hash_of(one(R"(["npm i -g a@1", "a --version", "true"])", ""), "agent"), h);
  EXPECT_NE(hash_of(one(R"(["npm i -g a@1"])", ""), "agent"), h);
  EXPECT_NE(hash_of(one(R"(["a --version", "npm i -g a@1"])", ""), "agent"), h);
  // Two steps are not one step with a newline.
  EXPECT_NE(hash_of(one(R"(["npm i -g a@1\na --version"])", ""), "agent"), h);
  // Resources, env, aliases and descriptions are applied at start: same hash.
  EXPECT_EQ(hash_of(one(R"(["npm i -g a@1", "a --version"])",
                        R"(, "memory_mb": 4096, "cpu_count": 1, "env": {"X": "y"},
                           "aliases": ["ag"], "description": "d")"),
                    "agent"),
            h);
  // The parent's steps are part of the child's.
  auto parent_step = R"({"templates": [{"name": "base", "packages": ["bash"], "run": ["true"]},
      {"name": "agent", "extends": "base", "packages": ["npm"],
       "run": ["npm i -g a@1", "a --version"]}]})";
  EXPECT_NE(hash_of(parent_step, "agent"), h);
  // Packages count, their order does not.
  EXPECT_NE(hash_of(R"({"templates": [{"name": "t", "packages": ["bash", "curl"]}]})", "t"),
            hash_of(R"({"templates": [{"name": "t", "packages": ["bash"]}]})", "t"));
  EXPECT_EQ(hash_of(R"({"templates": [{"name": "t", "packages": ["bash", "curl"]}]})", "t"),
            hash_of(R"({"templates": [{"name": "t", "packages": ["curl", "bash"]}]})", "t"));
  // So do the suite and the mirror.
  EXPECT_NE(hash_of(R"({"suite": "trixie", "templates": [{"name": "t", "packages": ["bash"]}]})", "t"),
            hash_of(R"({"templates": [{"name": "t", "packages": ["bash"]}]})", "t"));
}

TEST_F(TemplateCatalog, UnknownParentIsAnError) {
  auto cat = load(R"({"templates": [
    {"name": "base", "packages": ["bash"]},
    {"name": "agent", "extends": "nobody", "packages": ["npm"]}]})");
  ASSERT_FALSE(cat.ok());
  EXPECT_NE(cat.error().message.find("template agent extends unknown nobody"), std::string::npos)
    << cat.error().message;
  // A parent must come before its children in the file.
  auto later = load(R"({"templates": [
    {"name": "agent", "extends": "base", "packages": ["npm"]},
    {"name": "base", "packages": ["bash"]}]})");
  ASSERT_FALSE(later.ok());
  EXPECT_NE(later.error().message.find("extends unknown base"), std::string::npos);
}

TEST_F(TemplateCatalog, RefusesBadCatalogues) {
  auto refused = [&](const std::string& templates, const std::string& why) {
    auto cat = load(R"({"templates": [)" + templates + "]}");
    ASSERT_FALSE(cat.ok()) << templates;
    EXPECT_NE(cat.error().message.find(why), std::string::npos)
      << templates << " -> " << cat.error().message;
  };
  refused(R"({"name": "a", "packages": ["bash"]}, {"name": "a", "packages": ["bash"]})",
          "already taken");
  refused(R"({"name": "a", "aliases": ["b"], "packages": ["bash"]},
             {"name": "b", "packages": ["bash"]})",
          "already taken");
  refused(R"({"name": "a", "aliases": ["a"], "packages": ["bash"]})", "already taken");
  refused(R"({"name": "../x", "packages": ["bash"]})", "names are");
  refused(R"({"name": "a", "aliases": ["Big One"], "packages": ["bash"]})", "alias");
  refused(R"({"name": "a", "packages": ["bash,curl"]})", "not a Debian package name");
  refused(R"({"name": "a", "packages": ["bash"], "run": "npm i"})", "run must be a list");
  refused(R"({"name": "a", "packages": ["bash"], "run": [""]})", "non-empty");
  refused(R"({"name": "a", "packages": ["bash"], "memory_mb": 0})", "memory_mb");
  refused(R"({"name": "a", "packages": ["bash"], "cpu_count": "2"})", "cpu_count");
  refused(R"({"name": "a", "packages": ["bash"], "packges": ["x"]})", "unknown key");
  refused(R"({"name": "a"})", "no packages");
  refused(R"({"name": "a", "packages": ["bash"], "ready_port": 80})", "ready_port needs a start_cmd");
  refused(R"({"name": "a", "packages": ["bash"], "start_cmd": "x", "ready_port": 70000})", "ready_port");
  refused(R"({"name": "a", "packages": ["bash"], "start_cmd": 1})", "start_cmd must be a string");
  refused(R"({"packages": ["bash"]})", "needs a \"name\"");
  auto not_json = load("{");
  ASSERT_FALSE(not_json.ok());
  EXPECT_FALSE(template_catalog::load(dir_ + "/missing.json", dir_).ok());
}

// A template's server (the code interpreter's) and the port that says it is
// up pass to templates extending it, and to an org's template built on it
// unless that brings a start command of its own. Neither is in the hash:
// they act when a sandbox starts, not on the root filesystem.
TEST_F(TemplateCatalog, StartCommandAndReadyPortAreInherited) {
  auto cat = load(R"({"templates": [
    {"name": "base", "packages": ["bash"]},
    {"name": "ci", "extends": "base", "packages": ["curl"], "start_cmd": "serve", "ready_port": 49999},
    {"name": "ci_plus", "extends": "ci", "packages": ["git"]},
    {"name": "own", "extends": "ci", "packages": ["git"], "start_cmd": "other"}]})");
  ASSERT_TRUE(cat.ok()) << cat.error().message;
  EXPECT_EQ(cat->find("base")->ready_port, 0);
  EXPECT_EQ(cat->find("ci")->start_cmd, "serve");
  EXPECT_EQ(cat->find("ci_plus")->start_cmd, "serve");
  EXPECT_EQ(cat->find("ci_plus")->ready_port, 49999);
  EXPECT_EQ(cat->find("own")->start_cmd, "other");
  EXPECT_EQ(cat->find("own")->ready_port, 0) << "another command's port is not known";
  auto same = load(R"({"templates": [{"name": "base", "packages": ["bash"]},
    {"name": "ci", "extends": "base", "packages": ["curl"]}]})");
  EXPECT_EQ(same->find("ci")->hash, cat->find("ci")->hash);

  template_request req;
  req.org_id = "org";
  req.name = "mine";
  req.extends = "ci";
  auto inherited = cat->recipe(req);
  ASSERT_TRUE(inherited.ok());
  EXPECT_EQ(inherited->start_cmd, "serve");
  EXPECT_EQ(inherited->ready_port, 49999);
  req.start_cmd = "my-server";
  auto replaced = cat->recipe(req);
  EXPECT_EQ(replaced->start_cmd, "my-server");
  EXPECT_EQ(replaced->ready_port, 0);
  user_template t;
  t.id = "tid";
  EXPECT_EQ(template_catalog::user_spec(t, *inherited).ready_port, 49999);
  // The recipe is stored: the port survives it.
  auto stored = *inherited;
  stored.id = "b";
  auto back = stored_copy(stored);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->ready_port, 49999);
}

TEST_F(TemplateCatalog, BuiltOnlyWithTheMarkerOfACompletedBuild) {
  auto cat = load(family);
  ASSERT_TRUE(cat.ok()) << cat.error().message;
  auto base = *cat->find("base");
  auto dir = fs::path{cat->rootfs(base)}.parent_path().string();
  EXPECT_FALSE(cat->is_built(base));
  // What an interrupted build leaves: a .building dir, or a root without marker.
  fs::create_directories(dir + ".building/rootfs/usr/bin");
  std::ofstream{dir + ".building/rootfs/usr/bin/python3"} << "";
  std::ofstream{dir + ".building/template.json"} << "{}";
  EXPECT_FALSE(cat->is_built(base));
  fs::create_directories(cat->rootfs(base) + "/usr/bin");
  std::ofstream{cat->rootfs(base) + "/usr/bin/python3"} << "";
  EXPECT_FALSE(cat->is_built(base));
  std::ofstream{dir + "/template.json"} << "{}";
  EXPECT_TRUE(cat->is_built(base));
  EXPECT_FALSE(cat->is_built(*cat->find("agent")));
  // A template with the same hash under another name is still its own dir.
  EXPECT_FALSE(cat->is_built(*cat->find("canvas")));
}

// The one build that needs no mmdebstrap: a template with the spec of one
// already built gets hard links to its files. What an interrupted build left
// (a .building dir with a mount inside, as a killed mmdebstrap leaves /proc)
// is unmounted and removed first.
TEST_F(TemplateCatalog, BuildLinksATwinAndClearsAnInterruptedBuild) {
  auto cat = load(R"({"templates": [{"name": "cua", "packages": ["bash"]},
                                    {"name": "canvas", "extends": "cua", "memory_mb": 1024}]})");
  ASSERT_TRUE(cat.ok()) << cat.error().message;
  auto cua = *cat->find("cua");
  auto canvas = *cat->find("canvas");
  ASSERT_EQ(cua.hash, canvas.hash);
  fs::create_directories(cat->rootfs(cua) + "/etc");
  std::ofstream{cat->rootfs(cua) + "/etc/os-release"} << "ID=debian\n";
  std::ofstream{fs::path{cat->rootfs(cua)}.parent_path() / "template.json"} << "{}";
  ASSERT_TRUE(cat->is_built(cua));

  auto leftover = fs::path{cat->rootfs(canvas)}.parent_path().string() + ".building";
  fs::create_directories(leftover + "/rootfs/proc");
  if (::mount("tmpfs", (leftover + "/rootfs/proc").c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "needs root to mount a tmpfs";
  std::ofstream{leftover + "/rootfs/proc/inside-a-mount"} << "x";

  std::vector<std::string> lines;
  auto st = cat->build(canvas, [&](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(cat->is_built(canvas));
  EXPECT_FALSE(fs::exists(leftover));
  std::ifstream mounts{"/proc/self/mounts"};
  std::string all{std::istreambuf_iterator<char>{mounts}, {}};
  EXPECT_EQ(all.find(leftover), std::string::npos) << "still mounted";
  // The same files, linked, not copied.
  struct stat a {}, b {};
  ASSERT_EQ(::stat((cat->rootfs(cua) + "/etc/os-release").c_str(), &a), 0);
  ASSERT_EQ(::stat((cat->rootfs(canvas) + "/etc/os-release").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  std::ifstream marker{fs::path{cat->rootfs(canvas)}.parent_path() / "template.json"};
  std::string text{std::istreambuf_iterator<char>{marker}, {}};
  EXPECT_NE(text.find("\"name\": \"canvas\""), std::string::npos) << text;
  EXPECT_NE(lines.back().find("template canvas built at"), std::string::npos);
  // Built once, a second build is a no-op.
  lines.clear();
  ASSERT_TRUE(cat->build(canvas, [&](const std::string& l) { lines.push_back(l); }).ok());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("is cached"), std::string::npos);
}

TEST_F(TemplateCatalog, BuildCommandRunsStepsInTheNewRootWithTheNetworkSettings) {
  auto cat = load(family);
  ASSERT_TRUE(cat.ok()) << cat.error().message;
  build_network net;
  net.npm_registry = "https://registry.example/";
  net.settings["https_proxy"] = "http://proxy.example:3128";
  net.ca_file = "/etc/ssl/certs/ca-certificates.crt";
  auto argv = cat->build_command(*cat->find("browser"), "/x/rootfs", net);
  ASSERT_GE(argv.size(), 4u);
  EXPECT_EQ(argv[0], "mmdebstrap");
  EXPECT_EQ(argv[argv.size() - 3], "bookworm");
  EXPECT_EQ(argv[argv.size() - 2], "/x/rootfs");
  EXPECT_EQ(argv[argv.size() - 1], "http://deb.debian.org/debian");
  EXPECT_TRUE(std::count(argv.begin(), argv.end(), "--variant=minbase"));
  EXPECT_TRUE(std::count(argv.begin(), argv.end(),
                         "--include=bash,chromium,nodejs,npm,python3"));
  std::vector<std::string> steps;
  for (auto& a : argv)
    if (a.rfind("--customize-hook=chroot \"$1\" /usr/bin/env -i ", 0) == 0)
      steps.push_back(a);
  ASSERT_EQ(steps.size(), 3u);
  for (auto& s : steps) {
    EXPECT_NE(s.find("'npm_config_registry=https://registry.example/'"), std::string::npos) << s;
    EXPECT_NE(s.find("'https_proxy=http://proxy.example:3128'"), std::string::npos) << s;
    EXPECT_NE(s.find("npm_config_cafile=/tmp/sandboxd-build/ca.crt"), std::string::npos) << s;
    EXPECT_NE(s.find("HOME=/root"), std::string::npos) << s;
  }
  // In order, each quoted for the shell mmdebstrap runs the hook with.
  EXPECT_NE(steps[0].find("/bin/sh -ec 'npm install -g x@1'"), std::string::npos) << steps[0];
  EXPECT_NE(steps[1].find("/bin/sh -ec 'x --version'"), std::string::npos) << steps[1];
  EXPECT_NE(steps[2].find(R"(/bin/sh -ec 'echo '\''it'\'''\''s'\'' > /etc/x')"),
            std::string::npos)
    << steps[2];
  // The step's text reaches sh -c unchanged through one round of shell parsing.
  auto quoted = steps[2].substr(steps[2].find("/bin/sh -ec ") + 12);
  std::string round_trip;
  {
    auto script = dir_ + "/echo.sh";
    std::ofstream{script} << "printf '%s' " << quoted << " > " << dir_ << "/out\n";
    ASSERT_EQ(std::system(("sh " + script).c_str()), 0);
    std::ifstream in{dir_ + "/out"};
    std::getline(in, round_trip, '\0');
  }
  EXPECT_EQ(round_trip, "echo 'it''s' > /etc/x");
  // The CA goes in before the steps and everything of the build's goes after.
  auto pos = [&](const std::string& needle) {
    return std::find_if(argv.begin(), argv.end(),
                        [&](auto& a) { return a.find(needle) != std::string::npos; })
           - argv.begin();
  };
  EXPECT_LT(pos("cp '/etc/ssl/certs/ca-certificates.crt'"), pos("npm install -g x@1"));
  EXPECT_GT(pos("rm -rf \"$1/tmp/sandboxd-build\""), pos("/etc/x"));
  // No run steps, nothing of the kind.
  auto base = cat->build_command(*cat->find("base"), "/y/rootfs", net);
  for (auto& a : base) {
    EXPECT_EQ(a.find("/usr/bin/env -i"), std::string::npos) << a;
    EXPECT_EQ(a.find("ca.crt"), std::string::npos) << a;
  }
}

TEST_F(TemplateCatalog, NetworkSettingsComeFromTheEnvironment) {
  auto saved = [](const char* k) {
    const char* v = std::getenv(k);
    return v ? std::optional<std::string>{v} : std::nullopt;
  };
  const char* keys[] = {"npm_config_registry", "NPM_CONFIG_REGISTRY", "https_proxy",
                        "npm_config_cafile", "NPM_CONFIG_CAFILE", "NODE_EXTRA_CA_CERTS",
                        "SSL_CERT_FILE"};
  std::map<std::string, std::optional<std::string>> before;
  for (auto k : keys) {
    before[k] = saved(k);
    ::unsetenv(k);
  }
  auto ca = dir_ + "/ca.pem";
  std::ofstream{ca} << "x";
  ::setenv("npm_config_registry", "https://registry.example/", 1);
  ::setenv("https_proxy", "http://p:1", 1);
  ::setenv("npm_config_cafile", (dir_ + "/absent.pem").c_str(), 1);
  ::setenv("NODE_EXTRA_CA_CERTS", ca.c_str(), 1);
  auto net = build_network::from_environment();
  EXPECT_EQ(net.npm_registry, "https://registry.example/");
  EXPECT_EQ(net.settings.at("https_proxy"), "http://p:1");
  EXPECT_EQ(net.ca_file, ca); // the first that exists
  for (auto k : keys)
    ::unsetenv(k);
  auto bare = build_network::from_environment();
  EXPECT_EQ(bare.npm_registry, "https://registry.npmjs.org/");
  EXPECT_TRUE(bare.ca_file.empty());
  for (auto& [k, v] : before)
    if (v)
      ::setenv(k.c_str(), v->c_str(), 1);
}

} // namespace
