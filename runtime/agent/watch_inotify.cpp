#include "runtime/agent/watch_inotify.hpp"

#include <cerrno>
#include <cstring>

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/agent/dir_children.hpp"
#include "runtime/agent/request.hpp"

namespace sandboxd::agent {
namespace {

// IN_CLOSE_WRITE is deliberately left out: IN_MODIFY already reports writes.
constexpr uint32_t kMask = IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_DELETE | IN_DELETE_SELF | IN_MOVED_FROM |
                           IN_ATTRIB | IN_EXCL_UNLINK | IN_ONLYDIR;

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

bool within(const std::string& rel, const std::string& dir) {
  return rel == dir || (rel.size() > dir.size() && rel.compare(0, dir.size(), dir) == 0 && rel[dir.size()] == '/');
}

[[noreturn]] void fail_watch(int err, const std::string& path) {
  if (err == ENOENT) fail("not_found", "path not found: " + path);
  if (err == ENOTDIR) fail("invalid_argument", "path is not a directory: " + path);
  if (err == ENOSPC) fail("failed_precondition", "inotify watch limit reached watching " + path);
  if (err == EMFILE) fail("failed_precondition", "inotify instance limit reached watching " + path);
  fail_errno(err, "watch " + path);
}

}  // namespace

json to_json(const watch_event& e) { return json{{"name", e.name}, {"event", e.event}}; }

inotify_tree::inotify_tree(const std::string& root, bool recursive) : root_(root), recursive_(recursive) {
  struct stat st;
  if (::stat(root_.c_str(), &st) < 0) fail_watch(errno, root_);
  if (!S_ISDIR(st.st_mode)) fail("invalid_argument", "path is not a directory: " + root_);
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) fail_watch(errno, root_);
  try {
    // The root may be reached through symlinks; subdirectories are not followed.
    root_wd_ = ::inotify_add_watch(fd_, root_.c_str(), kMask);
    if (root_wd_ < 0) fail_watch(errno, root_);
    dirs_[root_wd_] = "";
    if (recursive_) add_dir("", nullptr, true);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

inotify_tree::~inotify_tree() {
  if (fd_ >= 0) ::close(fd_);
}

std::string inotify_tree::full_path(const std::string& rel) const {
  if (rel.empty()) return root_;
  return root_ == "/" ? "/" + rel : root_ + "/" + rel;
}

void inotify_tree::add_dir(const std::string& rel, std::vector<watch_event>* found, bool at_start) {
  std::string full = full_path(rel);
  if (!rel.empty()) {
    int wd = ::inotify_add_watch(fd_, full.c_str(), kMask | IN_DONT_FOLLOW);
    if (wd < 0) {
      if (at_start && (errno == ENOSPC || errno == EMFILE)) fail_watch(errno, full);
      return;  // vanished, unreadable or not a directory any more: skip it
    }
    dirs_[wd] = rel;
  }
  DIR* d = ::opendir(full.c_str());
  if (!d) return;
  auto children = read_children(d);
  ::closedir(d);
  for (const auto& [name, is_dir] : children) {
    std::string child = join(rel, name);
    // Entries created between mkdir and our watch would otherwise go unseen.
    if (found) found->push_back({child, "create"});
    if (is_dir) add_dir(child, found, at_start);
  }
}

bool inotify_tree::read_events(std::vector<watch_event>& out) {
  alignas(inotify_event) char buf[64 * 1024];
  while (!gone_) {
    ssize_t n = ::read(fd_, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      fail_errno(errno, "read inotify events for " + root_);
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n && !gone_;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
      std::string name = e->len ? std::string(e->name, ::strnlen(e->name, e->len)) : std::string();
      handle(e->wd, e->mask, e->cookie, name, out);
      off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
  // A directory renamed out of the tree: its watches would report stale names.
  for (const auto& [cookie, rel] : moved_out_) unwatch_subtree(rel);
  moved_out_.clear();
  return !gone_;
}

void inotify_tree::handle(int wd, uint32_t mask, uint32_t cookie, const std::string& name,
                          std::vector<watch_event>& out) {
  auto it = dirs_.find(wd);
  if (it == dirs_.end()) return;  // includes IN_Q_OVERFLOW (wd -1)
  bool is_root = wd == root_wd_;
  if (mask & IN_IGNORED) {
    if (is_root) gone_ = true;
    dirs_.erase(it);
    return;
  }
  if (mask & IN_UNMOUNT) {
    if (is_root) gone_ = true;
    return;
  }
  if (name.empty()) {
    // Events about a watched directory itself. For subdirectories the
    // parent's watch reports them already.
    if (!is_root) return;
    if (mask & IN_DELETE_SELF) {
      out.push_back({".", "remove"});
      gone_ = true;
    } else if (mask & IN_ATTRIB) {
      out.push_back({".", "chmod"});
    }
    return;
  }
  std::string rel = join(it->second, name);
  bool subtree = recursive_ && (mask & IN_ISDIR);
  if (mask & IN_CREATE) {
    out.push_back({rel, "create"});
    if (subtree) add_dir(rel, &out, false);
  } else if (mask & IN_MOVED_TO) {
    out.push_back({rel, "create"});
    if (subtree) {
      auto from = moved_out_.find(cookie);
      if (from != moved_out_.end()) {
        rename_subtree(from->second, rel);
        moved_out_.erase(from);
      } else {
        add_dir(rel, nullptr, false);
      }
    }
  } else if (mask & IN_MODIFY) {
    out.push_back({rel, "write"});
  } else if (mask & IN_DELETE) {
    out.push_back({rel, "remove"});
  } else if (mask & IN_MOVED_FROM) {
    out.push_back({rel, "rename"});
    if (subtree) moved_out_[cookie] = rel;
  } else if (mask & IN_ATTRIB) {
    out.push_back({rel, "chmod"});
  }
}

void inotify_tree::rename_subtree(const std::string& from, const std::string& to) {
  for (auto& [wd, rel] : dirs_)
    if (wd != root_wd_ && within(rel, from)) rel = to + rel.substr(from.size());
}

void inotify_tree::unwatch_subtree(const std::string& rel) {
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    if (it->first != root_wd_ && within(it->second, rel)) {
      ::inotify_rm_watch(fd_, it->first);
      it = dirs_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace sandboxd::agent
