// The launch namespace containers start from, and the mount-table reader it
// relies on, with real mounts under a temporary directory (removed after).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/fd_closer.hpp"
#include "runtime/launch_namespace.hpp"
#include "runtime/mount_point.hpp"

namespace fs = std::filesystem;
using namespace sandboxd;

namespace {

class scratch_mounts : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sandboxd-launch-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    for (auto& m : mount_points_under(dir))
      ::umount2(m.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  bool mount_tmpfs(const std::string& at) {
    fs::create_directories(at);
    return ::mount("tmpfs", at.c_str(), "tmpfs", 0, "size=1m") == 0;
  }
  static bool mounted_here(const std::string& path) {
    auto all = mount_points_under("");
    return std::find(all.begin(), all.end(), path) != all.end();
  }
  std::string dir;
};

} // namespace

TEST_F(scratch_mounts, mount_points_under_decodes_names_and_lists_the_deepest_first) {
  if (!mount_tmpfs(dir + "/a b"))
    GTEST_SKIP() << "needs root to mount a tmpfs";
  ASSERT_TRUE(mount_tmpfs(dir + "/a b/inner"));
  ASSERT_TRUE(mount_tmpfs(dir + "-beside")); // a sibling with the same prefix
  auto found = mount_points_under(dir);
  ::umount2((dir + "-beside").c_str(), MNT_DETACH);
  fs::remove(dir + "-beside");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], dir + "/a b/inner");
  EXPECT_EQ(found[1], dir + "/a b");
}

TEST_F(scratch_mounts, a_launch_leaves_out_sandbox_mounts_and_puts_the_root_in_its_own_copy_only) {
  if (!mount_tmpfs(dir + "/sandboxes/old/disk"))
    GTEST_SKIP() << "needs root to mount a tmpfs";
  launch_namespace launch;
  auto made = launch.make({dir + "/sandboxes"});
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_TRUE(mounted_here(dir + "/sandboxes/old/disk")) << "the host keeps its mounts";

  // A root mounted nowhere yet, as the runtime's overlay is.
  fd_closer fsfd{static_cast<int>(::syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC))};
  ASSERT_GE(fsfd.get(), 0);
  ASSERT_EQ(::syscall(SYS_fsconfig, fsfd.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0), 0);
  fd_closer root{static_cast<int>(::syscall(SYS_fsmount, fsfd.get(), FSMOUNT_CLOEXEC, 0))};
  ASSERT_GE(root.get(), 0);
  ASSERT_EQ(::mkdirat(root.get(), "etc", 0755), 0);
  auto target = dir + "/root";
  fs::create_directories(target);

  bool saw_root = false, saw_old = true;
  auto ran = launch.run_with_root(root.get(), target, [&]() -> status {
    saw_root = fs::is_directory(target + "/etc") && mounted_here(target);
    saw_old = mounted_here(dir + "/sandboxes/old/disk");
    // What this thread spawns starts here too.
    saw_root = saw_root && std::system(("test -d '" + target + "/etc'").c_str()) == 0;
    return success();
  });
  ASSERT_TRUE(ran.ok()) << ran.error().message;
  EXPECT_TRUE(saw_root) << "the root sits at its target inside";
  EXPECT_FALSE(saw_old) << "sandbox mounts of the host are left out";
  // Back on the host: the root was never mounted here; its mounts are.
  EXPECT_FALSE(mounted_here(target));
  EXPECT_FALSE(fs::exists(target + "/etc"));
  EXPECT_TRUE(mounted_here(dir + "/sandboxes/old/disk"));
}
