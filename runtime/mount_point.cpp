#include "runtime/mount_point.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace sandboxd {

bool is_mount_point(const std::string& path) {
  struct stat self, parent;
  return ::lstat(path.c_str(), &self) == 0
         && ::lstat((path + "/..").c_str(), &parent) == 0 && self.st_dev != parent.st_dev;
}

status attach_mount(int fd, const std::string& target, const std::string& what) {
  if (::syscall(SYS_move_mount, fd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
    return internal_error(errno_text("mount " + what + " on " + target));
  return success();
}

std::vector<std::string> mount_points_under(const std::string& dir) {
  std::vector<std::string> inside;
  // The calling thread's own: a thread may be in a namespace of its own.
  std::ifstream mounts{"/proc/thread-self/mounts"};
  std::string dev, target, rest;
  while (mounts >> dev >> target && std::getline(mounts, rest)) {
    std::string path; // octal escapes: \040 for a space and so on
    for (size_t i = 0; i < target.size(); ++i) {
      if (target[i] == '\\' && i + 3 < target.size()
          && std::all_of(target.begin() + i + 1, target.begin() + i + 4,
                         [](char c) { return c >= '0' && c <= '7'; })) {
        path += static_cast<char>(std::stoi(target.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        path += target[i];
      }
    }
    if (path.rfind(dir + "/", 0) == 0)
      inside.push_back(path);
  }
  std::sort(inside.begin(), inside.end(),
            [](auto& a, auto& b) { return a.size() > b.size(); });
  return inside;
}

} // namespace sandboxd
