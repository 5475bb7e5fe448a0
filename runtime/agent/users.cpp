#include "runtime/agent/users.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace sandboxd::agent {
namespace {

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

bool parse_id(const std::string& s, unsigned long& out) {
  if (s.empty() || s.size() > 10) return false;
  unsigned long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  out = v;
  return true;
}

// Calls fn(fields) for each well-formed line of a colon-separated database;
// stops when fn returns true.
template <class Fn>
void scan(const char* path, size_t min_fields, Fn fn) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto fields = split(line, ':');
    if (fields.size() < min_fields) continue;
    if (fn(fields)) return;
  }
}

}  // namespace

std::optional<user_info> lookup_user(const std::string& name) {
  if (name.empty()) return std::nullopt;
  std::optional<user_info> found;
  scan("/etc/passwd", 7, [&](const std::vector<std::string>& f) {
    unsigned long uid, gid;
    if (f[0] != name || !parse_id(f[2], uid) || !parse_id(f[3], gid)) return false;
    user_info u;
    u.name = f[0];
    u.uid = static_cast<uid_t>(uid);
    u.gid = static_cast<gid_t>(gid);
    u.home = f[5].empty() ? "/" : f[5];
    u.shell = f[6];
    found = std::move(u);
    return true;
  });
  if (!found) return std::nullopt;
  found->groups.push_back(found->gid);
  scan("/etc/group", 4, [&](const std::vector<std::string>& f) {
    unsigned long gid;
    if (!parse_id(f[2], gid)) return false;
    for (const auto& member : split(f[3], ',')) {
      if (member == name && std::find(found->groups.begin(), found->groups.end(), gid) == found->groups.end()) {
        found->groups.push_back(static_cast<gid_t>(gid));
      }
    }
    return false;
  });
  return found;
}

std::string user_name_for(uid_t uid) {
  std::string name = std::to_string(uid);
  scan("/etc/passwd", 7, [&](const std::vector<std::string>& f) {
    unsigned long id;
    if (parse_id(f[2], id) && id == uid) {
      name = f[0];
      return true;
    }
    return false;
  });
  return name;
}

std::string group_name_for(gid_t gid) {
  std::string name = std::to_string(gid);
  scan("/etc/group", 3, [&](const std::vector<std::string>& f) {
    unsigned long id;
    if (parse_id(f[2], id) && id == gid) {
      name = f[0];
      return true;
    }
    return false;
  });
  return name;
}

}  // namespace sandboxd::agent
