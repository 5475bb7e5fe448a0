// Scoped per-thread filesystem identity (fsuid, fsgid, supplementary groups).
// Linux keeps credentials per thread; the raw syscalls used here (unlike the
// glibc setxid wrappers) change only the calling thread.
#pragma once

#include <vector>

#include <sys/types.h>

#include "runtime/agent/users.hpp"

namespace sandboxd::agent {

class fs_identity {
 public:
  explicit fs_identity(const user_info& user);
  ~fs_identity();
  fs_identity(const fs_identity&) = delete;
  fs_identity& operator=(const fs_identity&) = delete;

 private:
  bool active_ = false;
  uid_t saved_uid_ = 0;
  gid_t saved_gid_ = 0;
  std::vector<gid_t> saved_groups_;
};

}  // namespace sandboxd::agent
