#include "runtime/agent/dir_children.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

namespace sandboxd::agent {

std::vector<dir_child> read_children(DIR* d) {
  std::vector<dir_child> children;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    bool is_dir = e->d_type == DT_DIR;
    // Some filesystems leave the type out: ask, without following links.
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    children.push_back({e->d_name, is_dir});
  }
  return children;
}

}  // namespace sandboxd::agent
