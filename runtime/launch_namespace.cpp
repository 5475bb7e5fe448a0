#include "runtime/launch_namespace.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "runtime/mount_point.hpp"

namespace sandboxd {

namespace {

// setns into a mount namespace needs a thread whose root and working
// directory are its own, not shared with the process's other threads.
status own_fs_struct() {
  static thread_local bool own = false;
  if (!own && ::unshare(CLONE_FS) != 0)
    return internal_error(errno_text("unshare CLONE_FS"));
  own = true;
  return success();
}

fd_closer this_threads_namespace() {
  return fd_closer{::open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC)};
}

// Back to the host's namespace. Failing that, this thread would go on
// working on the wrong mounts: nothing safe is left to do.
void return_to(int host) {
  if (::setns(host, CLONE_NEWNS) != 0) {
    spdlog::critical("cannot return to the host's mount namespace: {}", std::strerror(errno));
    std::abort();
  }
}

} // namespace

status launch_namespace::make(const std::vector<std::string>& leave_out) {
  if (auto st = own_fs_struct(); !st)
    return st;
  host_ = this_threads_namespace();
  if (host_.get() < 0)
    return internal_error(errno_text("open the host's mount namespace"));
  if (::unshare(CLONE_NEWNS) != 0)
    return internal_error(errno_text("unshare a mount namespace"));
  // Private before anything is unmounted: nothing here reaches the host.
  auto st = [&]() -> status {
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      return internal_error(errno_text("make the launch namespace private"));
    for (auto& dir : leave_out)
      for (auto& m : mount_points_under(dir))
        ::umount2(m.c_str(), MNT_DETACH);
    launch_ = this_threads_namespace();
    if (launch_.get() < 0)
      return internal_error(errno_text("open the launch namespace"));
    return success();
  }();
  return_to(host_.get());
  return st;
}

status launch_namespace::run_with_root(int root, const std::string& target,
                                       const std::function<status()>& fn,
                                       const std::vector<std::pair<int, std::string>>& extra) {
  if (auto st = own_fs_struct(); !st)
    return st;
  if (::setns(launch_.get(), CLONE_NEWNS) != 0)
    return internal_error(errno_text("enter the launch namespace"));
  // A copy of its own: the root put there is this container's alone, and
  // goes with the namespace once the container's copy is made.
  if (::unshare(CLONE_NEWNS) != 0) {
    auto st = internal_error(errno_text("unshare a mount namespace"));
    return_to(host_.get());
    return st;
  }
  if (auto st = attach_mount(root, target, "the sandbox's root"); !st) {
    return_to(host_.get());
    return st;
  }
  for (auto& [fd, at] : extra)
    if (auto st = attach_mount(fd, at, "a volume"); !st) {
      return_to(host_.get());
      return st;
    }
  auto st = fn();
  return_to(host_.get());
  return st;
}

} // namespace sandboxd
