// inotify watch over one directory (optionally its whole subtree), turning
// raw inotify events into {name relative to the watched directory, event}.
// Shared by the streaming `watch` op and the polling watchers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace sandboxd::agent {

using json = nlohmann::json;

struct watch_event {
  std::string name;   // relative to the watched directory; "." for the directory itself
  const char* event;  // create | write | remove | rename | chmod
};

/// {"name":N,"event":E}
json to_json(const watch_event& e);

class inotify_tree {
 public:
  /// Watches `root` (absolute). Runs with the caller's filesystem identity:
  /// missing -> not_found, not a directory -> invalid_argument, no access ->
  /// permission_denied (all as agent_error).
  inotify_tree(const std::string& root, bool recursive);
  ~inotify_tree();
  inotify_tree(const inotify_tree&) = delete;
  inotify_tree& operator=(const inotify_tree&) = delete;

  /// Non-blocking inotify fd; readable when events are pending.
  int fd() const { return fd_; }

  /// Drains pending events into `out`. Returns false once the watched
  /// directory itself is gone (deleted or unmounted).
  bool read_events(std::vector<watch_event>& out);

 private:
  std::string full_path(const std::string& rel) const;
  // Watches `rel` and, when recursive, its subdirectories; `found` (if set)
  // receives create events for the entries already inside.
  void add_dir(const std::string& rel, std::vector<watch_event>* found, bool at_start);
  void handle(int wd, uint32_t mask, uint32_t cookie, const std::string& name, std::vector<watch_event>& out);
  void rename_subtree(const std::string& from, const std::string& to);
  void unwatch_subtree(const std::string& rel);

  std::string root_;
  bool recursive_;
  int fd_ = -1;
  int root_wd_ = -1;
  bool gone_ = false;
  std::unordered_map<int, std::string> dirs_;  // wd -> directory relative to root ("" = root)
  std::map<uint32_t, std::string> moved_out_;  // cookie -> directory renamed away, pending its IN_MOVED_TO
};

}  // namespace sandboxd::agent
