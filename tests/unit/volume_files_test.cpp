// runtime/volume_files: the volume-content API's file operations on a
// temporary directory standing for a volume's root, including what a
// hostile sandbox can plant there (symlinks to host paths, climbing
// symlinks, loops, swapped entries). Nothing may ever be read, written,
// changed or removed outside the root.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "core/bounded_json.hpp"
#include "runtime/volume_files.hpp"

namespace fs = std::filesystem;
using namespace sandboxd;
namespace vf = sandboxd::volume_files;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary};
  out << text;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// A temporary dir holding `vol` (the volume's root, opened as its fd) and
// `outside` (a host directory with a secret the volume must never reach);
// removed whatever the test's outcome (remove_all removes symlinks, never
// what they name).
class VolumeFiles : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volume-files-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base = tmpl;
    vol = base + "/vol";
    outside = base + "/outside";
    fs::create_directory(vol);
    fs::create_directory(outside);
    spit(outside + "/secret", "host secret");
    ::chmod((outside + "/secret").c_str(), 0600);
    root = ::open(vol.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ASSERT_GE(root, 0);
  }
  void TearDown() override {
    if (root >= 0)
      ::close(root);
    std::error_code ec;
    fs::remove_all(base, ec);
  }

  // Writes `text` to `path` through the API.
  result<vf::entry_stat> put(const std::string& path, const std::string& text,
                             vf::attributes a = {}, bool force = false) {
    auto u = vf::upload::begin(root, path, a, force);
    if (!u)
      return u.error();
    if (auto w = u->write(text.data(), text.size()); !w)
      return w.error();
    return u->commit();
  }

  result<std::string> get(const std::string& path) {
    auto f = vf::open_file(root, path);
    if (!f)
      return f.error();
    return read_all(f->fd.get());
  }

  // The outside dir untouched: its one file, its content, its mode.
  void expect_outside_intact() {
    std::set<std::string> names;
    for (auto& e : fs::directory_iterator(outside))
      names.insert(e.path().filename().string());
    EXPECT_EQ(names, std::set<std::string>{"secret"});
    EXPECT_EQ(slurp(outside + "/secret"), "host secret");
    struct stat st {};
    ASSERT_EQ(::stat((outside + "/secret").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, 0u);
  }

  std::string base, vol, outside;
  int root = -1;
};

TEST(VolumeFilesNormalize, RelativeToTheRootNeverAbove) {
  EXPECT_EQ(*vf::normalize("/a/b"), "a/b");
  EXPECT_EQ(*vf::normalize("a/b"), "a/b");
  EXPECT_EQ(*vf::normalize("a//b/./c/../d/"), "a/b/d");
  EXPECT_EQ(*vf::normalize("../../x"), "x");
  EXPECT_EQ(*vf::normalize("/a/../../../etc/passwd"), "etc/passwd");
  EXPECT_EQ(*vf::normalize("/"), "");
  EXPECT_EQ(*vf::normalize("."), "");
  EXPECT_EQ(vf::normalize("").error().status, 400);
  EXPECT_EQ(vf::normalize(std::string("a\0b", 3)).error().status, 400);
  EXPECT_EQ(vf::normalize("a/" + std::string(256, 'x')).error().status, 400);
  EXPECT_TRUE(vf::normalize("a/" + std::string(255, 'x')));
  EXPECT_EQ(vf::normalize(std::string(4097, 'a')).error().status, 400);
}

TEST(VolumeFilesAttributes, IdsModesAndNoSetuid) {
  EXPECT_TRUE(vf::check({65535, 65535, 07777 & ~06000}));
  EXPECT_EQ(vf::check({65536, {}, {}}).error().status, 400);
  EXPECT_EQ(vf::check({{}, 70000, {}}).error().status, 400);
  EXPECT_EQ(vf::check({{}, {}, 010000}).error().status, 400);
  EXPECT_EQ(vf::check({{}, {}, 04755}).error().status, 400);
  EXPECT_EQ(vf::check({{}, {}, 02755}).error().status, 400);
  EXPECT_TRUE(vf::check({{}, {}, 01777})); // sticky is harmless
}

TEST_F(VolumeFiles, WriteStatReadWithDefaultsAndGivenAttributes) {
  auto e = put("/hello.txt", "hello");
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->name, "hello.txt");
  EXPECT_EQ(e->path, "/hello.txt");
  EXPECT_EQ(e->type, "file");
  EXPECT_EQ(e->size, 5);
  EXPECT_EQ(e->mode, 0644u);
  EXPECT_EQ(e->uid, 1000u);
  EXPECT_EQ(e->gid, 1000u);
  EXPECT_EQ(slurp(vol + "/hello.txt"), "hello");
  EXPECT_EQ(*get("hello.txt"), "hello");

  auto s = vf::stat(root, "hello.txt");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->path, "/hello.txt");
  auto j = vf::to_json(*s);
  for (auto k : {"name", "type", "path", "size", "mode", "uid", "gid", "atime", "mtime", "ctime"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_FALSE(j.contains("target"));
  EXPECT_EQ(j["mtime"].get<std::string>().back(), 'Z');

  auto g = put("/given", "x", {1234, 2345, 0600});
  ASSERT_TRUE(g) << g.error().message;
  struct stat st {};
  ASSERT_EQ(::lstat((vol + "/given").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 2345u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  auto r = vf::stat(root, "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, "directory");
  EXPECT_EQ(r->path, "/");
}

TEST_F(VolumeFiles, WriteConflictsMissingParentAndForce) {
  ASSERT_TRUE(put("f", "one"));
  auto again = put("f", "two");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().status, 409);
  EXPECT_EQ(slurp(vol + "/f"), "one");
  ASSERT_TRUE(put("f", "two", {}, true));
  EXPECT_EQ(slurp(vol + "/f"), "two");

  fs::create_directory(vol + "/d");
  EXPECT_EQ(put("d", "x", {}, true).error().status, 409);
  EXPECT_EQ(put("missing/f", "x", {}, true).error().status, 404);
  EXPECT_EQ(put("f/g", "x").error().status, 404); // a file is no parent
  EXPECT_EQ(put("/", "x", {}, true).error().status, 409);
  EXPECT_EQ(put("x", "y", {{}, {}, 04755}).error().status, 400);
}

TEST_F(VolumeFiles, AnAbandonedWriteLeavesNothing) {
  ASSERT_TRUE(put("keep", "old"));
  {
    auto u = vf::upload::begin(root, "keep", {}, true);
    ASSERT_TRUE(u);
    ASSERT_TRUE(u->write("partial", 7));
    // destroyed before commit: a client that went away mid-body
  }
  {
    auto u = vf::upload::begin(root, "new", {}, false);
    ASSERT_TRUE(u);
    ASSERT_TRUE(u->write("partial", 7));
  }
  std::set<std::string> names;
  for (auto& e : fs::directory_iterator(vol))
    names.insert(e.path().filename().string());
  EXPECT_EQ(names, std::set<std::string>{"keep"});
  EXPECT_EQ(slurp(vol + "/keep"), "old");
}

TEST_F(VolumeFiles, AnEntryMadeDuringAnUploadIsNotReplacedWithoutForce) {
  auto u = vf::upload::begin(root, "raced", {}, false);
  ASSERT_TRUE(u);
  spit(vol + "/raced", "made meanwhile");
  ASSERT_TRUE(u->write("late", 4));
  auto c = u->commit();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().status, 409);
  EXPECT_EQ(slurp(vol + "/raced"), "made meanwhile");
  EXPECT_EQ(std::distance(fs::directory_iterator(vol), fs::directory_iterator{}), 1);
}

TEST_F(VolumeFiles, MakeDirWithAndWithoutParents) {
  EXPECT_EQ(vf::make_dir(root, "a/b/c", {}, false).error().status, 404);
  auto d = vf::make_dir(root, "a/b/c", {1001, 1002, 0750}, true);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->type, "directory");
  EXPECT_EQ(d->path, "/a/b/c");
  EXPECT_EQ(d->mode, 0750u);
  EXPECT_EQ(d->uid, 1001u);
  struct stat st {};
  ASSERT_EQ(::lstat((vol + "/a/b").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_gid, 1002u);
  EXPECT_EQ(st.st_mode & 07777, 0750u);

  auto plain = vf::make_dir(root, "/a/plain", {}, false);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->mode, 0755u);
  EXPECT_EQ(plain->uid, 1000u);
  EXPECT_EQ(vf::make_dir(root, "a/plain", {}, false).error().status, 409);
  EXPECT_TRUE(vf::make_dir(root, "a/plain", {}, true)); // force: an existing dir is fine
  ASSERT_TRUE(put("a/file", "x"));
  EXPECT_EQ(vf::make_dir(root, "a/file", {}, true).error().status, 409);
  EXPECT_EQ(vf::make_dir(root, "a/file/sub", {}, true).error().status, 404);
  EXPECT_EQ(vf::make_dir(root, "bad", {{}, {}, 02755}, false).error().status, 400);
}

TEST_F(VolumeFiles, ListDepthOrderAndBounds) {
  ASSERT_TRUE(vf::make_dir(root, "d/e/f", {}, true));
  ASSERT_TRUE(put("d/b.txt", "b"));
  ASSERT_TRUE(put("d/a.txt", "a"));
  ASSERT_TRUE(put("d/e/f/deep", "x"));
  ::symlink("e", (vol + "/d/link").c_str());

  auto one = vf::list(root, "/d", 1);
  ASSERT_TRUE(one) << one.error().message;
  std::vector<std::string> paths;
  for (auto& e : *one)
    paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/d/a.txt", "/d/b.txt", "/d/e", "/d/link"}));
  EXPECT_EQ((*one)[3].type, "symlink");
  EXPECT_EQ((*one)[3].target, "e");

  auto two = vf::list(root, "d", 3);
  ASSERT_TRUE(two);
  paths.clear();
  for (auto& e : *two)
    paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/d/a.txt", "/d/b.txt", "/d/e", "/d/e/f",
                                             "/d/e/f/deep", "/d/link"}));

  auto top = vf::list(root, "/", 1);
  ASSERT_TRUE(top);
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].path, "/d");

  // A final symlink is followed, inside the root.
  auto via = vf::list(root, "d/link", 1);
  ASSERT_TRUE(via);
  ASSERT_EQ(via->size(), 1u);
  EXPECT_EQ((*via)[0].path, "/d/link/f");

  EXPECT_EQ(vf::list(root, "d", 0).error().status, 400);
  EXPECT_EQ(vf::list(root, "d", 17).error().status, 400);
  EXPECT_TRUE(vf::list(root, "d", 16));
  EXPECT_EQ(vf::list(root, "missing", 1).error().status, 404);
  EXPECT_EQ(vf::list(root, "d/a.txt", 1).error().status, 400);
}

TEST_F(VolumeFiles, ListingMoreThanTheCapIsRefused) {
  fs::create_directory(vol + "/many");
  for (size_t i = 0; i <= vf::max_list_entries; ++i)
    spit(vol + "/many/" + std::to_string(i), "");
  auto l = vf::list(root, "many", 1);
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().status, 400);
  ::unlink((vol + "/many/0").c_str());
  auto ok = vf::list(root, "many", 1);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->size(), vf::max_list_entries);
}

TEST_F(VolumeFiles, NamesThatAreNotUtf8AreRenderedLossily) {
  std::string bad = "bad\xff\xfe";
  spit(vol + "/" + bad, "x");
  auto l = vf::list(root, "/", 1);
  ASSERT_TRUE(l);
  auto text = vf::to_json(*l).dump(); // a strict dump: throws on invalid UTF-8
  EXPECT_NE(text.find("bad\xef\xbf\xbd"), std::string::npos);
  auto s = vf::stat(root, bad);
  ASSERT_TRUE(s);
  EXPECT_NO_THROW((void)vf::to_json(*s).dump());
}

TEST_F(VolumeFiles, RemoveFilesAndTrees) {
  ASSERT_TRUE(vf::make_dir(root, "t/u/v", {}, true));
  ASSERT_TRUE(put("t/u/v/f", "x"));
  ASSERT_TRUE(put("t/g", "x"));
  ASSERT_TRUE(vf::remove(root, "t/g"));
  EXPECT_FALSE(fs::exists(vol + "/t/g"));
  ASSERT_TRUE(vf::remove(root, "/t"));
  EXPECT_FALSE(fs::exists(vol + "/t"));
  EXPECT_EQ(vf::remove(root, "t").error().status, 404);
  EXPECT_EQ(vf::remove(root, "/").error().status, 400);
  EXPECT_EQ(vf::remove(root, "..").error().status, 400); // normalized to the root
  EXPECT_TRUE(fs::exists(vol));
}

TEST_F(VolumeFiles, RemoveRefusesTreesDeeperThanTheBound) {
  std::string p = vol;
  for (unsigned i = 0; i < vf::max_remove_depth + 2; ++i) {
    p += "/d";
    ASSERT_EQ(::mkdir(p.c_str(), 0755), 0);
  }
  auto r = vf::remove(root, "d");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400);
}

TEST_F(VolumeFiles, UpdateOwnerAndMode) {
  ASSERT_TRUE(put("f", "x"));
  auto u = vf::update(root, "/f", {1001, {}, 0755});
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->uid, 1001u);
  EXPECT_EQ(u->gid, 1000u); // kept
  EXPECT_EQ(u->mode, 0755u);
  EXPECT_EQ(u->path, "/f");
  EXPECT_EQ(vf::update(root, "missing", {{}, {}, 0644}).error().status, 404);
  EXPECT_EQ(vf::update(root, "f", {{}, {}, 04755}).error().status, 400);
  auto r = vf::update(root, "/", {{}, {}, 0775});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mode, 0775u);
}

TEST_F(VolumeFiles, ReadingAFifoOrADirectoryIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo((vol + "/fifo").c_str(), 0644), 0);
  EXPECT_EQ(vf::open_file(root, "fifo").error().status, 400);
  fs::create_directory(vol + "/dir");
  EXPECT_EQ(vf::open_file(root, "dir").error().status, 400);
  EXPECT_EQ(vf::open_file(root, "/").error().status, 400);
  EXPECT_EQ(vf::open_file(root, "nothing").error().status, 404);
  // A FIFO's mode changes without opening it for reading blocking.
  EXPECT_TRUE(vf::update(root, "fifo", {{}, {}, 0600}));
}

// -- hostile volumes --------------------------------------------------------

TEST_F(VolumeFiles, ASymlinkToEtcIsTheVolumesEtc) {
  struct stat before {};
  ASSERT_EQ(::stat("/etc/passwd", &before), 0);
  auto passwd = slurp("/etc/passwd");
  ASSERT_EQ(::symlink("/etc", (vol + "/evil").c_str()), 0);

  // No etc in the volume: nothing to write into, nothing to read.
  EXPECT_EQ(put("evil/passwd", "pwned", {}, true).error().status, 404);
  EXPECT_EQ(get("evil/passwd").error().status, 404);
  EXPECT_EQ(vf::stat(root, "evil/passwd").error().status, 404);
  EXPECT_EQ(vf::list(root, "evil", 1).error().status, 404);
  EXPECT_EQ(vf::make_dir(root, "evil/x", {}, true).error().status, 409); // "evil" dangles
  EXPECT_EQ(vf::update(root, "evil/passwd", {0, 0, 0777}).error().status, 404);
  EXPECT_EQ(vf::remove(root, "evil/passwd").error().status, 404);

  // With one, "evil" names it.
  fs::create_directory(vol + "/etc");
  auto w = put("evil/passwd", "pwned", {}, true);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->path, "/evil/passwd");
  EXPECT_EQ(slurp(vol + "/etc/passwd"), "pwned");
  EXPECT_EQ(*get("evil/passwd"), "pwned");
  ASSERT_TRUE(vf::remove(root, "evil/passwd"));
  EXPECT_FALSE(fs::exists(vol + "/etc/passwd"));

  struct stat after {};
  ASSERT_EQ(::stat("/etc/passwd", &after), 0);
  EXPECT_EQ(slurp("/etc/passwd"), passwd);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
}

TEST_F(VolumeFiles, ClimbingSymlinksStayInTheRoot) {
  // vol/up -> ../outside (relative climb), vol/far -> ../../../../.. (past /)
  ASSERT_EQ(::symlink("../outside", (vol + "/up").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../../../..", (vol + "/far").c_str()), 0);
  auto rel_outside = outside.substr(1); // "tmp/volume-files-test-…/outside"

  EXPECT_EQ(get("up/secret").error().status, 404);
  EXPECT_EQ(get("far/" + rel_outside + "/secret").error().status, 404);
  EXPECT_EQ(get("../outside/secret").error().status, 404);
  EXPECT_EQ(get("/up/../../outside/secret").error().status, 404);
  EXPECT_EQ(put("up/new", "x", {}, true).error().status, 404);
  EXPECT_EQ(put("far/" + rel_outside + "/secret", "x", {}, true).error().status, 404);
  EXPECT_EQ(vf::remove(root, "up/secret").error().status, 404);
  EXPECT_EQ(vf::remove(root, "far/" + rel_outside).error().status, 404);
  EXPECT_EQ(vf::update(root, "far/" + rel_outside + "/secret", {0, 0, 0666}).error().status, 404);
  EXPECT_EQ(vf::list(root, "up", 1).error().status, 404);

  // "far" resolves to the volume's root: listing it lists the volume.
  auto l = vf::list(root, "far", 1);
  ASSERT_TRUE(l);
  std::set<std::string> names;
  for (auto& e : *l)
    names.insert(e.name);
  EXPECT_EQ(names, (std::set<std::string>{"far", "up"}));

  // The request path itself cannot climb either.
  ASSERT_TRUE(put("../../x", "in"));
  EXPECT_EQ(slurp(vol + "/x"), "in");
  expect_outside_intact();
}

TEST_F(VolumeFiles, AbsoluteSymlinksInTheMiddleOfPaths) {
  ASSERT_EQ(::symlink("/", (vol + "/slash").c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (vol + "/abs").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/secret").c_str(), (vol + "/direct").c_str()), 0);
  auto rel_outside = outside.substr(1);

  EXPECT_EQ(get("slash/" + rel_outside + "/secret").error().status, 404);
  EXPECT_EQ(get("abs/secret").error().status, 404);
  EXPECT_EQ(get("direct").error().status, 404); // a final symlink resolves inside too
  EXPECT_EQ(get("slash/etc/shadow").error().status, 404);
  EXPECT_EQ(put("abs/secret", "x", {}, true).error().status, 404);

  // Stat reports the link itself.
  auto s = vf::stat(root, "direct");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->type, "symlink");
  EXPECT_EQ(s->target, outside + "/secret");

  // A forced write over a final symlink replaces the link, not its target.
  ASSERT_TRUE(put("direct", "replaced", {}, true));
  struct stat st {};
  ASSERT_EQ(::lstat((vol + "/direct").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(slurp(vol + "/direct"), "replaced");

  // Inside the volume, the same absolute target works as in a sandbox.
  fs::create_directories(vol + "/" + rel_outside);
  spit(vol + "/" + rel_outside + "/secret", "volume's own");
  EXPECT_EQ(*get("abs/secret"), "volume's own");
  EXPECT_EQ(*get("slash/" + rel_outside + "/secret"), "volume's own");
  expect_outside_intact();
}

TEST_F(VolumeFiles, ListingSymlinkLoopsEnds) {
  ASSERT_EQ(::symlink("self", (vol + "/self").c_str()), 0);
  fs::create_directories(vol + "/a/b");
  ASSERT_EQ(::symlink("../..", (vol + "/a/b/up").c_str()), 0);
  ASSERT_EQ(::symlink("/a", (vol + "/a/b/abs").c_str()), 0);
  ASSERT_EQ(::symlink("/", (vol + "/root").c_str()), 0);
  auto l = vf::list(root, "/", 16);
  ASSERT_TRUE(l) << l.error().message;
  std::vector<std::string> paths;
  for (auto& e : *l)
    paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/a", "/a/b", "/a/b/abs", "/a/b/up", "/root",
                                             "/self"}));
  EXPECT_EQ(vf::list(root, "self", 1).error().status, 400); // ELOOP
  EXPECT_EQ(get("self").error().status, 400);
  auto s = vf::stat(root, "self");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->type, "symlink");
}

TEST_F(VolumeFiles, RemovingADirWithSymlinksOutRemovesOnlyTheLinks) {
  fs::create_directories(vol + "/d/sub");
  spit(vol + "/d/sub/f", "x");
  ASSERT_EQ(::symlink(outside.c_str(), (vol + "/d/out").c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (vol + "/d/sub/out2").c_str()), 0);
  ASSERT_EQ(::symlink("../../outside", (vol + "/d/rel").c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (vol + "/toplink").c_str()), 0);
  ASSERT_TRUE(vf::remove(root, "d"));
  EXPECT_FALSE(fs::exists(vol + "/d"));
  // A symlink to a directory is removed as a link.
  ASSERT_TRUE(vf::remove(root, "toplink"));
  EXPECT_FALSE(fs::is_symlink(vol + "/toplink"));
  expect_outside_intact();
}

TEST_F(VolumeFiles, OwnerAndModeNeverGoThroughASymlink) {
  ASSERT_EQ(::symlink((outside + "/secret").c_str(), (vol + "/l").c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (vol + "/m").c_str()), 0);
  // A mode on a link: refused.
  EXPECT_EQ(vf::update(root, "l", {{}, {}, 0666}).error().status, 400);
  // An owner on a link: the link's own.
  auto u = vf::update(root, "l", {4321, 4321, {}});
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->type, "symlink");
  EXPECT_EQ(u->uid, 4321u);
  struct stat st {};
  ASSERT_EQ(::lstat((vol + "/l").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4321u);
  // Through a link in the middle: resolved inside the volume, where nothing is.
  EXPECT_EQ(vf::update(root, "m/secret", {0, 0, 0777}).error().status, 404);
  expect_outside_intact();
}

} // namespace
