#include "runtime/mount_point.hpp"

#include <sys/stat.h>

namespace sandboxd {

bool is_mount_point(const std::string& path) {
  struct stat self, parent;
  return ::lstat(path.c_str(), &self) == 0
         && ::lstat((path + "/..").c_str(), &parent) == 0 && self.st_dev != parent.st_dev;
}

} // namespace sandboxd
