// /etc/passwd and /etc/group parsing (no NSS: the agent is linked statically).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace sandboxd::agent {

struct user_info {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::string shell;
  std::vector<gid_t> groups;  // primary gid first, then supplementary groups
};

/// Looks a user up by name in /etc/passwd (supplementary groups from /etc/group).
std::optional<user_info> lookup_user(const std::string& name);

/// Name for a uid/gid, or the number as a string when unknown.
std::string user_name_for(uid_t uid);
std::string group_name_for(gid_t gid);

}  // namespace sandboxd::agent
