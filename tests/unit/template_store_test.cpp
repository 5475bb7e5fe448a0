// An org's own templates (POST /templates) without building anything: the
// request's validation, the recipe the catalogue makes of it, where it is
// built, the store's records and progress lines, what a restart does to a
// build under way, and what a sandbox of which org starts from.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "actors/template_builder.hpp"
#include "core/ids.hpp"
#include "core/template_tags.hpp"
#include "runtime/templates.hpp"
#include "storage/store.hpp"
#include "tests/unit/raw_db.hpp"

using namespace sandboxd;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const char* catalogue = R"({
  "templates": [
    {"name": "base", "aliases": ["standard"], "packages": ["python3", "bash"],
     "env": {"LANG": "C.UTF-8", "A": "1"}, "cpu_count": 2, "memory_mb": 512},
    {"name": "agent", "extends": "base", "packages": ["nodejs"], "run": ["npm i -g x"],
     "memory_mb": 2048}
  ]
})";

struct TemplateStore : ::testing::Test {
  std::string dir;
  void SetUp() override {
    char tmpl[] = "/tmp/sandboxd-template-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    std::ofstream{dir + "/templates.json"} << catalogue;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  template_catalog load() {
    auto cat = template_catalog::load(dir + "/templates.json", dir + "/cache");
    EXPECT_TRUE(cat.ok()) << cat.error().message;
    cat->set_user_dir(dir + "/user");
    return std::move(*cat);
  }
  std::unique_ptr<store> open() {
    auto db = store::open(dir + "/db");
    EXPECT_TRUE(db.ok()) << db.error().message;
    return std::move(*db);
  }
};

result<template_request> parse(const std::string& body) {
  return parse_template_request(json::parse(body), "org1");
}

// A template of `org` named `name` with one build in `status`.
std::pair<user_template, template_build> make(const template_catalog& cat, const std::string& org,
                                              const std::string& name, build_status status,
                                              int64_t at) {
  template_request req;
  req.org_id = org;
  req.name = name;
  req.packages = {"jq"};
  req.env = {{"B", "2"}};
  req.start_cmd = "echo hi";
  auto b = *cat.recipe(req);
  user_template t;
  t.id = new_sandbox_id();
  t.org_id = org;
  t.name = name;
  t.created_ms = t.updated_ms = at;
  t.build_count = 1;
  b.id = new_uuid();
  b.template_id = t.id;
  b.org_id = org;
  b.status = status;
  b.created_ms = b.updated_ms = at;
  t.latest_build = b.id;
  t.latest_status = status;
  if (status == build_status::ready)
    t.ready = b;
  return {t, b};
}

} // namespace

TEST(TemplateRequest, AcceptsAFullSpecAndDefaults) {
  auto r = parse(R"({"name": "my-tpl.v1_x", "extends": "standard", "packages": ["jq", "g++", "libc6.1-dev"],
                     "env": {"FOO": "bar", "_X1": ""}, "startCmd": "echo hi > /tmp/x",
                     "cpuCount": 8, "memoryMB": 128})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->org_id, "org1");
  EXPECT_EQ(r->name, "my-tpl.v1_x");
  EXPECT_EQ(r->extends, "standard");
  EXPECT_EQ(r->packages, (std::vector<std::string>{"jq", "g++", "libc6.1-dev"}));
  EXPECT_EQ(r->env.at("FOO"), "bar");
  EXPECT_EQ(r->start_cmd, "echo hi > /tmp/x");
  EXPECT_EQ(r->cpu_count, 8);
  EXPECT_EQ(r->memory_mb, 128);
  auto min = parse(R"({"name": "t"})");
  ASSERT_TRUE(min.ok()) << min.error().message;
  EXPECT_EQ(min->extends, "base");
  EXPECT_TRUE(min->packages.empty());
  EXPECT_FALSE(min->cpu_count);
  EXPECT_FALSE(min->memory_mb);
}

TEST(TemplateRequest, RefusesBadSpecsNamingTheField) {
  std::vector<std::pair<std::string, std::string>> bad = {
    {R"({})", "name is required"},
    {R"({"name": ""})", "name is required"},
    {R"({"name": 5})", "name is required"},
    {R"({"name": "Upper"})", "name must be"},
    {R"({"name": "-lead"})", "name must be"},
    {R"({"name": "a/b"})", "name must be"},
    {R"({"name": ")" + std::string(64, 'a') + R"("})", "name must be"},
    {R"({"name": "t", "run": ["curl x | sh"]})", "Debian packages only"},
    {R"({"name": "t", "steps": []})", "Debian packages only"},
    {R"({"name": "t", "colour": "red"})", "unknown field \"colour\""},
    {R"({"name": "t", "packages": "jq"})", "packages must be a list"},
    {R"({"name": "t", "packages": [1]})", "packages must be a list"},
    {R"({"name": "t", "packages": ["jq,curl"]})", "not a Debian package name"},
    {R"({"name": "t", "packages": ["jq=1.6"]})", "not a Debian package name"},
    {R"({"name": "t", "packages": ["-jq"]})", "not a Debian package name"},
    {R"({"name": "t", "packages": ["Jq"]})", "not a Debian package name"},
    {R"({"name": "t", "packages": ["j"]})", "not a Debian package name"},
    {R"x({"name": "t", "packages": ["$(reboot)"]})x", "not a Debian package name"},
    {R"({"name": "t", "env": []})", "env must be an object"},
    {R"({"name": "t", "env": {"A": 1}})", "env: A must be a string"},
    {R"({"name": "t", "env": {"1A": "x"}})", "is not a variable name"},
    {R"({"name": "t", "env": {"A=B": "x"}})", "is not a variable name"},
    {R"({"name": "t", "env": {"E2B_SANDBOX": "x"}})", "reserved"},
    {R"({"name": "t", "env": {"SANDBOXD_X": "x"}})", "reserved"},
    {R"({"name": "t", "startCmd": ["sh"]})", "startCmd must be"},
    {R"({"name": "t", "cpuCount": 0})", "cpuCount must be an integer from 1 to 8"},
    {R"({"name": "t", "cpuCount": 9})", "cpuCount must be an integer from 1 to 8"},
    {R"({"name": "t", "cpuCount": 1.5})", "cpuCount must be"},
    {R"({"name": "t", "memoryMB": 127})", "memoryMB must be an integer from 128 to 16384"},
    {R"({"name": "t", "memoryMB": 16385})", "memoryMB must be"},
    {R"({"name": "t", "extends": ""})", "extends must be"},
  };
  for (auto& [body, why] : bad) {
    auto r = parse(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().status, 400) << body;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << body << " → " << r.error().message;
  }
  std::string many = R"({"name": "t", "packages": [)";
  for (int i = 0; i < 101; ++i)
    many += std::string{i ? "," : ""} + "\"p" + std::to_string(i) + "\"";
  EXPECT_FALSE(parse(many + "]}").ok());
  EXPECT_FALSE(parse_template_request(json::array(), "o").ok());
}

TEST_F(TemplateStore, RecipeStacksTheRequestOnItsCatalogueParent) {
  auto cat = load();
  template_request req;
  req.org_id = "o";
  req.name = "mine";
  req.extends = "agent";
  req.packages = {"jq", "bash"};
  req.env = {{"A", "9"}, {"C", "3"}};
  req.start_cmd = "serve";
  auto b = cat.recipe(req);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->parent, "agent");
  EXPECT_EQ(b->packages, (std::vector<std::string>{"bash", "jq", "nodejs", "python3"}));
  EXPECT_EQ(b->run, (std::vector<std::string>{"npm i -g x"}));
  EXPECT_EQ(b->env, (std::map<std::string, std::string>{{"A", "9"}, {"C", "3"}, {"LANG", "C.UTF-8"}}));
  EXPECT_EQ(b->cpu_count, 2);
  EXPECT_EQ(b->memory_mb, 2048);
  EXPECT_EQ(b->start_cmd, "serve");
  EXPECT_NE(b->hash, cat.find("agent")->hash);
  req.cpu_count = 4;
  req.memory_mb = 1024;
  EXPECT_EQ(cat.recipe(req)->cpu_count, 4);
  EXPECT_EQ(cat.recipe(req)->memory_mb, 1024);
  // The hash is the root filesystem's: packages and run steps only.
  req.env.clear();
  req.start_cmd.clear();
  EXPECT_EQ(cat.recipe(req)->hash, b->hash);
  // No packages of its own: the parent's root filesystem exactly.
  template_request plain;
  plain.name = "plain";
  plain.extends = "standard";
  EXPECT_EQ(cat.recipe(plain)->hash, cat.find("base")->hash);
  EXPECT_EQ(cat.recipe(plain)->parent, "base");
  // Catalogue names and aliases are taken; parents come from the catalogue.
  for (auto taken : {"base", "standard", "agent"}) {
    template_request r;
    r.name = taken;
    auto x = cat.recipe(r);
    ASSERT_FALSE(x.ok());
    EXPECT_EQ(x.error().status, 409);
    EXPECT_NE(x.error().message.find("catalogue template"), std::string::npos);
  }
  template_request orphan;
  orphan.name = "x";
  orphan.extends = "nosuch";
  auto x = cat.recipe(orphan);
  ASSERT_FALSE(x.ok());
  EXPECT_EQ(x.error().status, 400);
  EXPECT_NE(x.error().message.find("extends: unknown template nosuch (the catalogue's templates: base, agent)"),
            std::string::npos)
    << x.error().message;
}

// A user template lives in the user directory under its id, and one with
// its parent's exact root filesystem is built by linking the parent's files.
TEST_F(TemplateStore, UserTemplatesAreBuiltInTheirOwnDirectory) {
  auto cat = load();
  auto [t, b] = make(cat, "o", "mine", build_status::ready, 1);
  auto spec = template_catalog::user_spec(t, b);
  EXPECT_EQ(spec.name, t.id);
  EXPECT_EQ(spec.aliases, std::vector<std::string>{"mine"});
  EXPECT_TRUE(spec.user);
  EXPECT_EQ(spec.start_cmd, "echo hi");
  EXPECT_EQ(spec.env.at("B"), "2");
  EXPECT_EQ(cat.rootfs(spec), dir + "/user/" + t.id + "-" + b.hash + "/rootfs");
  EXPECT_EQ(cat.rootfs(*cat.find("base")).rfind(dir + "/cache/base-", 0), 0u);
  EXPECT_FALSE(cat.is_built(spec));
  EXPECT_EQ(cat.built_at_ms(spec), 0);

  auto base = *cat.find("base");
  fs::create_directories(cat.rootfs(base) + "/etc");
  std::ofstream{cat.rootfs(base) + "/etc/os-release"} << "ID=debian\n";
  std::ofstream{fs::path{cat.rootfs(base)}.parent_path() / "template.json"} << "{}";
  template_request plain;
  plain.org_id = "o";
  plain.name = "plain";
  auto pb = *cat.recipe(plain);
  pb.id = new_uuid();
  user_template pt = t;
  pt.id = new_sandbox_id();
  auto pspec = template_catalog::user_spec(pt, pb);
  std::vector<std::string> lines;
  auto st = cat.build(pspec, [&](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(cat.is_built(pspec));
  EXPECT_GT(cat.built_at_ms(pspec), 0);
  EXPECT_TRUE(fs::exists(cat.rootfs(pspec) + "/etc/os-release"));
  EXPECT_EQ(cat.rootfs(pspec).rfind(dir + "/user/" + pt.id + "-", 0), 0u);
  // Deleting removes every directory of that template id, and only those.
  fs::create_directories(dir + "/user/" + pt.id + "-0123456789abcdef.building");
  ASSERT_TRUE(cat.remove_user_template(pt.id).ok());
  EXPECT_FALSE(fs::exists(fs::path{cat.rootfs(pspec)}.parent_path()));
  EXPECT_FALSE(fs::exists(dir + "/user/" + pt.id + "-0123456789abcdef.building"));
  EXPECT_TRUE(cat.is_built(base));
  EXPECT_FALSE(cat.remove_user_template("../../etc").ok());
}

TEST_F(TemplateStore, RecordsArePerOrgAndSurviveAReopen) {
  auto cat = load();
  auto [a, ab] = make(cat, "org-a", "one", build_status::ready, 10);
  auto [a2, a2b] = make(cat, "org-a", "two", build_status::building, 20);
  auto [b, bb] = make(cat, "org-b", "one", build_status::waiting, 5);
  {
    auto db = open();
    ASSERT_TRUE(db->put_user_template(a2, a2b).ok());
    ASSERT_TRUE(db->put_user_template(a, ab).ok());
    ASSERT_TRUE(db->put_user_template(b, bb).ok());
  }
  auto db = open();
  auto mine = *db->user_templates("org-a");
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].id, a.id); // oldest first
  EXPECT_EQ(mine[1].id, a2.id);
  ASSERT_TRUE(mine[0].ready);
  EXPECT_EQ(mine[0].ready->packages, ab.packages);
  EXPECT_EQ(mine[0].ready->env, ab.env);
  EXPECT_EQ(mine[0].ready->start_cmd, "echo hi");
  EXPECT_EQ(db->all_user_templates()->size(), 3u);
  // By id or name, and only in its own org.
  EXPECT_EQ((*db->find_user_template("org-a", "one"))->id, a.id);
  EXPECT_EQ((*db->find_user_template("org-a", a.id))->name, "one");
  EXPECT_EQ((*db->find_user_template("org-b", "one"))->id, b.id);
  EXPECT_FALSE(*db->find_user_template("org-b", a.id));
  EXPECT_FALSE(*db->find_user_template("org-b", "two"));
  EXPECT_FALSE(*db->find_user_template("org-c", "one"));
  EXPECT_FALSE(*db->find_user_template("org-a", ""));
  // Builds, newest first.
  auto rebuild = a2b;
  rebuild.id = new_uuid();
  rebuild.created_ms = 30;
  ASSERT_TRUE(db->put_template_build(rebuild).ok());
  auto builds = *db->template_builds(a2.id);
  ASSERT_EQ(builds.size(), 2u);
  EXPECT_EQ(builds[0].id, rebuild.id);
  EXPECT_EQ(builds[1].id, a2b.id);
  EXPECT_EQ((*db->find_template_build(a2.id, a2b.id))->status, build_status::building);
  EXPECT_FALSE(*db->find_template_build(a.id, a2b.id));
}

TEST_F(TemplateStore, ProgressLinesPageByOffsetAndLevelAndAreCapped) {
  auto db = open();
  std::vector<build_log_entry> lines;
  for (int i = 0; i < 10; ++i)
    lines.push_back({i, i % 3 == 0 ? "error" : i % 3 == 1 ? "warn" : "info", "base",
                     "line " + std::to_string(i)});
  ASSERT_TRUE(db->append_build_logs("b1", {lines.begin(), lines.begin() + 4}).ok());
  ASSERT_TRUE(db->append_build_logs("b1", {lines.begin() + 4, lines.end()}).ok());
  ASSERT_TRUE(db->append_build_logs("b2", {{1, "info", "", "other build"}}).ok());
  auto all = *db->build_logs("b1", 0, 100);
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all[9].message, "line 9");
  EXPECT_EQ(all[9].step, "base");
  EXPECT_EQ(all[9].timestamp_ms, 9);
  auto page = *db->build_logs("b1", 7, 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].message, "line 7");
  EXPECT_TRUE(db->build_logs("b1", 10, 5)->empty());
  auto errors = [](const build_log_entry& e) { return e.level == "error"; };
  auto errs = *db->build_logs("b1", 1, 10, errors);
  ASSERT_EQ(errs.size(), 3u); // lines 3, 6, 9: the offset counts filtered lines
  EXPECT_EQ(errs[0].message, "line 3");
  ASSERT_EQ(db->build_logs("b2", 0, 10)->size(), 1u);
  // Past the cap only error lines are kept.
  ASSERT_TRUE(db->append_build_logs("b1", {{11, "info", "", "dropped"}, {12, "error", "", "kept"}}, 10).ok());
  all = *db->build_logs("b1", 0, 100);
  ASSERT_EQ(all.size(), 11u);
  EXPECT_EQ(all.back().message, "kept");
}

TEST_F(TemplateStore, DeleteTakesBuildsAndLinesAlong) {
  auto cat = load();
  auto db = open();
  auto [t, b] = make(cat, "o", "gone", build_status::ready, 1);
  auto [k, kb] = make(cat, "o", "kept", build_status::ready, 2);
  ASSERT_TRUE(db->put_user_template(t, b).ok());
  ASSERT_TRUE(db->put_user_template(k, kb).ok());
  ASSERT_TRUE(db->append_build_logs(b.id, {{1, "info", "", "x"}}).ok());
  ASSERT_TRUE(db->append_build_logs(kb.id, {{1, "info", "", "y"}}).ok());
  ASSERT_TRUE(db->delete_user_template(t).ok());
  EXPECT_FALSE(*db->find_user_template("o", t.id));
  EXPECT_TRUE(db->template_builds(t.id)->empty());
  EXPECT_TRUE(db->build_logs(b.id, 0, 10)->empty());
  EXPECT_TRUE(*db->find_user_template("o", "kept"));
  EXPECT_EQ(db->build_logs(kb.id, 0, 10)->size(), 1u);
}

// A restart ends every build under way in error; a template keeps serving
// its last successful build, one that never built answers 409.
TEST_F(TemplateStore, RestartFailsBuildsUnderWayAndSandboxesFindTheLastGoodBuild) {
  auto cat = load();
  auto db = open();
  auto [fresh, fb] = make(cat, "o", "fresh", build_status::building, 1);
  auto [queued, qb] = make(cat, "o", "queued", build_status::waiting, 2);
  auto [old, ob] = make(cat, "o", "old", build_status::ready, 3);
  ASSERT_TRUE(db->put_user_template(fresh, fb).ok());
  ASSERT_TRUE(db->put_user_template(queued, qb).ok());
  // "old" is ready and being rebuilt.
  auto rebuild = ob;
  rebuild.id = new_uuid();
  rebuild.status = build_status::building;
  rebuild.created_ms = 4;
  old.latest_build = rebuild.id;
  old.latest_status = build_status::building;
  old.build_count = 2;
  ASSERT_TRUE(db->put_user_template(old, ob).ok());
  ASSERT_TRUE(db->put_template_build(rebuild).ok());
  // The half-built root filesystem of the build under way.
  auto partial = fs::path{cat.rootfs(template_catalog::user_spec(fresh, fb))}.parent_path().string()
                 + ".building";
  fs::create_directories(partial + "/rootfs/etc");

  // While building: the first build is not usable yet, the rebuild is.
  auto spec = find_user_template_spec(*db, "o", "fresh");
  ASSERT_TRUE(spec);
  ASSERT_FALSE(spec->ok());
  EXPECT_EQ(spec->error().status, 409);
  EXPECT_NE(spec->error().message.find("still building"), std::string::npos);
  auto o = find_user_template_spec(*db, "o", "old");
  ASSERT_TRUE(o && o->ok());
  EXPECT_EQ((*o)->hash, ob.hash);
  EXPECT_EQ((*o)->name, old.id);
  EXPECT_FALSE(find_user_template_spec(*db, "other-org", "old"));
  EXPECT_FALSE(find_user_template_spec(*db, "o", "base"));

  EXPECT_EQ(*fail_interrupted_builds(*db, cat), 3u);
  EXPECT_FALSE(fs::exists(partial));
  for (auto& [name, build_id] : std::vector<std::pair<std::string, std::string>>{
         {"fresh", fb.id}, {"queued", qb.id}, {"old", rebuild.id}}) {
    auto t = *db->find_user_template("o", name);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->latest_status, build_status::error) << name;
    auto b = *db->find_template_build(t->id, build_id);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->status, build_status::error);
    EXPECT_NE(b->reason.find("interrupted by a restart"), std::string::npos) << b->reason;
    EXPECT_GT(b->finished_ms, 0);
    auto lines = *db->build_logs(build_id, 0, 10);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back().level, "error");
  }
  EXPECT_EQ((*db->find_template_build(old.id, ob.id))->status, build_status::ready);
  spec = find_user_template_spec(*db, "o", "fresh");
  ASSERT_TRUE(spec && !spec->ok());
  EXPECT_EQ(spec->error().status, 409);
  EXPECT_NE(spec->error().message.find("has no successful build"), std::string::npos);
  EXPECT_NE(spec->error().message.find("interrupted by a restart"), std::string::npos);
  o = find_user_template_spec(*db, "o", "old");
  ASSERT_TRUE(o && o->ok());
  EXPECT_EQ((*o)->hash, ob.hash);
  // Nothing left to fail.
  EXPECT_EQ(*fail_interrupted_builds(*db, cat), 0u);
}

// Records that cannot be read are a failure (503), never "no such template":
// a create would make a new template over it, a sandbox's create answer 404.
TEST_F(TemplateStore, UnreadableRecordsAreAFailureNotAnAbsence) {
  auto cat = load();
  auto [t, b] = make(cat, "o", "mine", build_status::building, 1);
  {
    auto db = open();
    ASSERT_TRUE(db->put_user_template(t, b).ok());
    ASSERT_TRUE(db->append_build_logs(b.id, {{1, "info", "", "x"}}).ok());
  }
  for (auto family : {"templates", "template_builds", "template_build_logs"})
    corrupt_family(dir + "/db", family);
  auto db = open();
  ASSERT_TRUE(db);
  EXPECT_TRUE(read_failed(db->user_templates("o")));
  EXPECT_TRUE(read_failed(db->all_user_templates()));
  EXPECT_TRUE(read_failed(db->find_user_template("o", t.id)));
  EXPECT_TRUE(read_failed(db->find_user_template("o", "mine")));
  EXPECT_TRUE(read_failed(db->template_builds(t.id)));
  EXPECT_TRUE(read_failed(db->find_template_build(t.id, b.id)));
  EXPECT_TRUE(read_failed(db->build_logs(b.id, 0, 10)));
  auto spec = find_user_template_spec(*db, "o", "mine");
  ASSERT_TRUE(spec);
  EXPECT_TRUE(read_failed(*spec));
  EXPECT_TRUE(read_failed(fail_interrupted_builds(*db, cat)));
  // Writes that must read first fail too: numbering lines from 0 would
  // overwrite the first ones, a delete would leave builds behind.
  EXPECT_TRUE(read_failed(db->append_build_logs(b.id, {{2, "info", "", "y"}})));
  EXPECT_TRUE(read_failed(db->delete_user_template(t)));
}

// "name:tag" starts from the ready build holding the tag; "name" from the
// one holding "default"; an unknown tag is a 404 that says how to list them.
TEST_F(TemplateStore, SandboxesOfNameAndTagStartFromTheBuildHoldingIt) {
  auto cat = load();
  auto db = open();
  auto [t, b1] = make(cat, "o", "tagged", build_status::ready, 1);
  b1.hash = "hash-one";
  b1.tags = {"v1"};
  auto b2 = b1;
  b2.id = new_uuid();
  b2.hash = "hash-two";
  b2.created_ms = 2;
  b2.tags = {"v2", "default"};
  t.ready = b2;
  t.latest_build = b2.id;
  ASSERT_TRUE(db->put_template_and_builds(t, {b1, b2}).ok());
  auto hash_of = [&](const std::string& ref) {
    auto spec = find_user_template_spec(*db, "o", ref);
    EXPECT_TRUE(spec && spec->ok()) << ref;
    return spec && spec->ok() ? (*spec)->hash : std::string{};
  };
  EXPECT_EQ(hash_of("tagged:v1"), "hash-one");
  EXPECT_EQ(hash_of("tagged:v2"), "hash-two");
  EXPECT_EQ(hash_of("tagged"), "hash-two");
  EXPECT_EQ(hash_of(t.id + ":v1"), "hash-one");
  auto unknown = find_user_template_spec(*db, "o", "tagged:v9");
  ASSERT_TRUE(unknown && !unknown->ok());
  EXPECT_EQ(unknown->error().status, 404);
  EXPECT_NE(unknown->error().message.find("no ready build tagged v9"), std::string::npos);
  EXPECT_FALSE(find_user_template_spec(*db, "other-org", "tagged:v1"));
  // default moves back to the first build: "name" follows it.
  auto builds = *db->template_builds(t.id);
  auto changed = move_tags(builds, builds.back(), {"default"}, 3);
  refresh_ready(t, changed);
  ASSERT_TRUE(db->put_template_and_builds(t, changed).ok());
  EXPECT_EQ(hash_of("tagged"), "hash-one");
  EXPECT_EQ(hash_of("tagged:default"), "hash-one");
  EXPECT_EQ(hash_of("tagged:v2"), "hash-two");
}
