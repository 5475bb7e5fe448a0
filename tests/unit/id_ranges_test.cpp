// The host id ranges of sandboxes' user namespaces: never one range for two
// sandboxes, in one server or across two sharing the host's lock file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "runtime/id_mapping.hpp"

namespace fs = std::filesystem;
using namespace sandboxd;

namespace {

class IdRanges : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sandboxd-idranges-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    lock_ = dir_ + "/locks";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_, lock_;
};

constexpr uint32_t first = 1u << 30;

} // namespace

TEST_F(IdRanges, each_sandbox_gets_a_range_of_its_own) {
  id_ranges ids{lock_, first, 4};
  std::set<uint32_t> bases;
  for (auto id : {"a", "b", "c", "d"}) {
    auto r = ids.acquire(id);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((r->base - first) % id_range_size, 0u);
    bases.insert(r->base);
  }
  EXPECT_EQ(bases.size(), 4u);
  // Asking again is the same range; a fifth sandbox finds none.
  EXPECT_EQ(ids.acquire("a")->base, ids.of("a")->base);
  auto full = ids.acquire("e");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().status, 503);
  auto b = ids.of("b")->base;
  ids.release("b");
  EXPECT_EQ(ids.of("b").error().status, 404);
  auto again = ids.acquire("e");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->base, b); // the only free one
}

TEST_F(IdRanges, two_servers_on_one_host_never_share_a_range) {
  // Two open file descriptions of one lock file: what two servers hold.
  id_ranges one{lock_, first, 3}, two{lock_, first, 3};
  auto a = one.acquire("a");
  auto b = two.acquire("b");
  auto c = one.acquire("c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((std::set<uint32_t>{a->base, b->base, c->base}).size(), 3u);
  EXPECT_EQ(two.acquire("d").error().status, 503);
  // A server restarting adopts its live sandbox's range, unless another
  // server holds it meanwhile.
  EXPECT_EQ(two.adopt("x", *a).error().status, 409);
  one.release("a");
  EXPECT_TRUE(two.adopt("x", *a).ok());
  EXPECT_EQ(two.adopt("y", id_range{first + 1}).error().status, 400);
}

TEST_F(IdRanges, a_namespace_fd_carries_the_mapping) {
  auto fd = user_namespace_fd(id_range{first});
  ASSERT_TRUE(fd.ok()) << fd.error().message;
  char target[64] = {};
  auto link = "/proc/self/fd/" + std::to_string(*fd);
  ASSERT_GT(::readlink(link.c_str(), target, sizeof target - 1), 0);
  EXPECT_EQ(std::string{target}.rfind("user:[", 0), 0u);
  ::close(*fd);
}
