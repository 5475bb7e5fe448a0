#include "runtime/overlay.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/fd_closer.hpp"

namespace sandboxd {

namespace {

std::atomic<bool> takes_fds{true};

int set_fd(int fs, const char* key, int fd) {
  return static_cast<int>(::syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, key, nullptr, fd));
}

} // namespace

bool overlay_takes_fds() { return takes_fds.load(); }

result<int> make_overlay(const std::vector<int>& lowers, int upper, int work) {
  fd_closer fs{static_cast<int>(::syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC))};
  if (fs.get() < 0)
    return internal_error(errno_text("fsopen overlay"));
  for (int lower : lowers)
    if (set_fd(fs.get(), "lowerdir+", lower) != 0) {
      // Before 6.13 "lowerdir+" takes paths only (EINVAL); before 6.8 the
      // key is unknown (EINVAL too).
      if (errno == EINVAL) {
        takes_fds = false;
        return failure{501, "this kernel does not take overlay layers as file descriptors"};
      }
      return internal_error(errno_text("overlay lower layer"));
    }
  if (set_fd(fs.get(), "upperdir", upper) != 0)
    return internal_error(errno_text("overlay upper layer"));
  if (set_fd(fs.get(), "workdir", work) != 0)
    return internal_error(errno_text("overlay work directory"));
  if (::syscall(SYS_fsconfig, fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return internal_error(errno_text("create overlay"));
  fd_closer mnt{static_cast<int>(::syscall(SYS_fsmount, fs.get(), FSMOUNT_CLOEXEC, 0))};
  if (mnt.get() < 0)
    return internal_error(errno_text("fsmount overlay"));
  return mnt.release();
}

} // namespace sandboxd
