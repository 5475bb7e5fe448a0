#include "runtime/agent/fs_identity.hpp"

#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sandboxd::agent {

fs_identity::fs_identity(const user_info& user) {
  if (::geteuid() != 0) return;  // not privileged: act as ourselves
  if (user.uid == 0 && user.gid == 0) return;
  saved_uid_ = ::geteuid();
  saved_gid_ = ::getegid();
  int n = ::getgroups(0, nullptr);
  if (n > 0) {
    saved_groups_.resize(static_cast<size_t>(n));
    n = ::getgroups(n, saved_groups_.data());
    saved_groups_.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  std::vector<gid_t> groups = user.groups;
  if (groups.empty()) groups.push_back(user.gid);
  ::syscall(SYS_setgroups, groups.size(), groups.data());
  ::setfsgid(user.gid);
  ::setfsuid(user.uid);
  active_ = true;
}

fs_identity::~fs_identity() {
  if (!active_) return;
  ::setfsuid(saved_uid_);  // restores the filesystem capabilities first
  ::setfsgid(saved_gid_);
  ::syscall(SYS_setgroups, saved_groups_.size(), saved_groups_.data());
}

}  // namespace sandboxd::agent
