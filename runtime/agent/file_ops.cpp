#include "runtime/agent/file_ops.hpp"
#include "runtime/agent/dir_children.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "core/fd_closer.hpp"
#include "core/utf8_lossy.hpp"
#include "runtime/agent/connection.hpp"
#include "runtime/agent/fs_identity.hpp"
#include "runtime/agent/request.hpp"
#include "runtime/agent_protocol.hpp"
#include "runtime/base64.hpp"

namespace sandboxd::agent {
namespace {

constexpr size_t kStreamChunk = 256 * 1024;
// Largest file `read` returns inline (base64 must fit in one frame,
// kMaxFrameBytes).
constexpr int64_t kMaxInlineRead = 8ll * 1024 * 1024;
constexpr auto kUploadIdleTimeout = std::chrono::minutes(5);

// uid/gid -> name lookups, cached for one request.
class names {
 public:
  const std::string& user(uid_t uid) {
    auto it = users_.find(uid);
    if (it == users_.end()) it = users_.emplace(uid, user_name_for(uid)).first;
    return it->second;
  }
  const std::string& group(gid_t gid) {
    auto it = groups_.find(gid);
    if (it == groups_.end()) it = groups_.emplace(gid, group_name_for(gid)).first;
    return it->second;
  }

 private:
  std::map<uid_t, std::string> users_;
  std::map<gid_t, std::string> groups_;
};

std::string base_name(const std::string& path) {
  if (path == "/") return "/";
  return path.substr(path.rfind('/') + 1);
}

std::string parent_of(const std::string& path) {
  auto pos = path.rfind('/');
  if (pos == 0 || pos == std::string::npos) return "/";
  return path.substr(0, pos);
}

std::string permission_string(mode_t m) {
  char type = '?';
  if (S_ISREG(m)) type = '-';
  else if (S_ISDIR(m)) type = 'd';
  else if (S_ISLNK(m)) type = 'l';
  else if (S_ISCHR(m)) type = 'c';
  else if (S_ISBLK(m)) type = 'b';
  else if (S_ISFIFO(m)) type = 'p';
  else if (S_ISSOCK(m)) type = 's';
  std::string s(10, '-');
  s[0] = type;
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (m & (0400 >> i)) s[1 + i] = rwx[i];
  if (m & S_ISUID) s[3] = (m & S_IXUSR) ? 's' : 'S';
  if (m & S_ISGID) s[6] = (m & S_IXGRP) ? 's' : 'S';
  if (m & S_ISVTX) s[9] = (m & S_IXOTH) ? 't' : 'T';
  return s;
}

const char* type_name(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "dir";
  if (S_ISLNK(m)) return "symlink";
  return "other";
}

// Where a link leads, as envd reports it: the absolute, resolved path; for a
// link that leads nowhere (dangling, a loop), its target made absolute
// against the link's directory.
std::string absolute_target(const std::string& path) {
  if (char* real = ::realpath(path.c_str(), nullptr)) {
    std::string out = real;
    std::free(real);
    return out;
  }
  std::string target(4096, '\0');
  ssize_t len = ::readlink(path.c_str(), target.data(), target.size());
  target.resize(len > 0 ? static_cast<size_t>(len) : 0);
  if (target.empty() || target[0] == '/') return target;
  auto slash = path.rfind('/');
  return (slash == std::string::npos || slash == 0 ? std::string{"/"} : path.substr(0, slash + 1)) + target;
}

// A file's user metadata, as envd keeps it: `user.e2b.<key>` extended
// attributes. Read without following links, within bounds (a file may
// carry attributes set from inside by anyone who owns it).
constexpr const char* kMetadataPrefix = "user.e2b.";
constexpr size_t kMetadataPrefixLen = 9;

json read_metadata(const std::string& path) {
  json out = json::object();
  std::string names(64 * 1024, '\0');
  ssize_t len = ::llistxattr(path.c_str(), names.data(), names.size());
  if (len <= 0) return out;
  names.resize(static_cast<size_t>(len));
  for (size_t at = 0; at < names.size() && out.size() < 256;) {
    std::string name = names.c_str() + at;
    at += name.size() + 1;
    if (name.rfind(kMetadataPrefix, 0) != 0) continue;
    std::string value(4096, '\0');
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (v < 0) continue;
    value.resize(static_cast<size_t>(v));
    out[name.substr(kMetadataPrefixLen)] = utf8_lossy(value);
  }
  return out;
}

// An upload replaces the file's whole metadata set with `metadata`.
void write_metadata(const std::string& path, const json& metadata) {
  std::string names(64 * 1024, '\0');
  ssize_t len = ::llistxattr(path.c_str(), names.data(), names.size());
  for (size_t at = 0; len > 0 && at < static_cast<size_t>(len);) {
    std::string name = names.c_str() + at;
    at += name.size() + 1;
    if (name.rfind(kMetadataPrefix, 0) == 0 && !metadata.contains(name.substr(kMetadataPrefixLen)))
      ::lremovexattr(path.c_str(), name.c_str());
  }
  for (auto& [key, value] : metadata.items()) {
    if (!value.is_string()) fail("invalid_argument", "metadata values must be strings");
    auto v = value.get<std::string>();
    if (::lsetxattr(path.c_str(), (kMetadataPrefix + key).c_str(), v.data(), v.size(), 0) < 0) {
      if (errno == ENOTSUP) return;  // a filesystem without xattrs (/proc, /sys): the body is written
      fail_errno(errno, "write metadata of " + path);
    }
  }
}

json entry_from_stat(const std::string& path, const struct stat& st, names& n) {
  json e{{"name", base_name(path)},
         {"path", path},
         {"type", type_name(st.st_mode)},
         {"size", static_cast<int64_t>(st.st_size)},
         {"mode", static_cast<int>(st.st_mode & 07777)},
         {"permissions", permission_string(st.st_mode)},
         {"owner", n.user(st.st_uid)},
         {"group", n.group(st.st_gid)},
         {"mtime_ms", static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000}};
  if (S_ISLNK(st.st_mode)) e["symlink_target"] = absolute_target(path);
  if (auto meta = read_metadata(path); !meta.empty()) e["metadata"] = std::move(meta);
  return e;
}

[[noreturn]] void fail_path(int err, const std::string& what, const std::string& path) {
  if (err == ENOENT) fail("not_found", "path not found: " + path);
  fail_errno(err, what + " " + path);
}

json entry_for(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) fail_path(errno, "stat", path);
  names n;
  return entry_from_stat(path, st, n);
}

// mkdir -p; returns true if the final directory was created by this call.
bool make_dirs(const std::string& path) {
  if (path == "/") return false;
  bool created = false;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0777) == 0) {
      created = pos == std::string::npos;
      continue;
    }
    int err = errno;
    struct stat st;
    if (err == EEXIST && ::stat(prefix.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) fail("already_exists", "path exists and is not a directory: " + prefix);
      continue;
    }
    fail_errno(err, "mkdir " + prefix);
  }
  return created;
}

void list_dir(const std::string& path, int depth, bool top, names& n, json& out) {
  DIR* d = ::opendir(path.c_str());
  if (!d) {
    if (top) fail_path(errno, "list", path);
    return;  // unreadable subdirectory: list what we can
  }
  std::vector<std::string> children;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    children.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(children.begin(), children.end());
  for (const auto& name : children) {
    std::string child = path == "/" ? "/" + name : path + "/" + name;
    struct stat st;
    if (::lstat(child.c_str(), &st) < 0) continue;  // vanished meanwhile
    out.push_back(entry_from_stat(child, st, n));
    if (depth > 1 && S_ISDIR(st.st_mode)) list_dir(child, depth - 1, false, n, out);
  }
}

// Opens a regular file for reading; fails for missing paths and directories.
int open_for_read(const std::string& path, struct stat& st) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == EISDIR) fail("invalid_argument", "path is a directory: " + path);
    fail_path(errno, "open", path);
  }
  fd_closer guard(fd);
  if (::fstat(fd, &st) < 0) fail_errno(errno, "stat " + path);
  if (S_ISDIR(st.st_mode)) fail("invalid_argument", "path is a directory: " + path);
  if (!S_ISREG(st.st_mode)) fail("invalid_argument", "not a regular file: " + path);
  int fl = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return guard.release();
}

ssize_t read_some(int fd, char* buf, size_t size) {
  for (;;) {
    ssize_t n = ::read(fd, buf, size);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

void write_fully(int fd, const char* data, size_t size, const std::string& path) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "write " + path);
    }
    done += static_cast<size_t>(n);
  }
}

std::string decode_data(const json& frame) {
  auto it = frame.find("data");
  if (it == frame.end() || it->is_null()) return {};
  if (!it->is_string()) fail("invalid_argument", "field must be a string: data");
  auto bytes = base64::decode(it->get_ref<const std::string&>());
  if (!bytes) fail("invalid_argument", "data is not valid base64");
  return std::move(*bytes);
}

// Copy fallback for moves across filesystems (regular files only).
void copy_file(const std::string& from, const std::string& to) {
  struct stat st;
  int in = open_for_read(from, st);
  fd_closer in_guard(in);
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) fail_errno(errno, "create " + to);
  fd_closer out_guard(out);
  std::vector<char> buf(kStreamChunk);
  for (;;) {
    ssize_t n = read_some(in, buf.data(), buf.size());
    if (n < 0) fail_errno(errno, "read " + from);
    if (n == 0) break;
    write_fully(out, buf.data(), static_cast<size_t>(n), to);
  }
}

void remove_tree_at(int parent, const std::string& name, const std::string& shown) {
  int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail_errno(errno, "remove " + shown);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    fail_errno(e, "remove " + shown);
  }
  auto children = read_children(d);
  try {
    for (const auto& [child, is_dir] : children) {
      std::string child_shown = shown + "/" + child;
      if (is_dir) {
        remove_tree_at(fd, child, child_shown);
      } else if (::unlinkat(fd, child.c_str(), 0) < 0 && errno != ENOENT) {
        fail_errno(errno, "remove " + child_shown);
      }
    }
  } catch (...) {
    ::closedir(d);
    throw;
  }
  ::closedir(d);
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT) fail_errno(errno, "remove " + shown);
}

}  // namespace

void handle_stat(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  fs_identity as(user);
  send_frame(fd, json{{"type", "result"}, {"entry", entry_for(path)}});
}

void handle_list(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  int64_t depth = optional_int(req, "depth").value_or(1);
  if (depth < 1) fail("invalid_argument", "depth must be at least 1");
  fs_identity as(user);
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) fail_path(errno, "list", path);
  if (!S_ISDIR(st.st_mode)) fail("invalid_argument", "path is not a directory: " + path);
  names n;
  json entries = json::array();
  list_dir(path, static_cast<int>(std::min<int64_t>(depth, 1000)), true, n, entries);
  send_frame(fd, json{{"type", "result"}, {"entries", std::move(entries)}});
}

void handle_read(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  int64_t max_bytes = optional_int(req, "max_bytes").value_or(0);
  int64_t limit = max_bytes > 0 ? std::min(max_bytes, kMaxInlineRead) : kMaxInlineRead;
  fs_identity as(user);
  struct stat st;
  fd_closer file(open_for_read(path, st));
  int in = file.get();
  auto too_large = [&] {
    if (max_bytes > 0 && max_bytes <= kMaxInlineRead)
      fail("too_large", "file is larger than " + std::to_string(max_bytes) + " bytes");
    fail("too_large", "file is larger than " + std::to_string(kMaxInlineRead) + " bytes; use read_stream");
  };
  if (st.st_size > limit) too_large();
  std::string data;
  data.reserve(static_cast<size_t>(st.st_size));
  std::vector<char> buf(kStreamChunk);
  for (;;) {
    ssize_t n = read_some(in, buf.data(), buf.size());
    if (n < 0) fail_errno(errno, "read " + path);
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
    if (static_cast<int64_t>(data.size()) > limit) too_large();  // grew while reading
  }
  send_frame(fd, json{{"type", "result"}, {"size", data.size()}, {"data", base64::encode(data)}});
}

void handle_read_stream(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  fs_identity as(user);
  struct stat st;
  fd_closer file(open_for_read(path, st));
  int in = file.get();
  if (!send_frame(fd, json{{"type", "start"}, {"size", static_cast<int64_t>(st.st_size)}})) return;
  std::vector<char> buf(kStreamChunk);
  int64_t total = 0;
  for (;;) {
    ssize_t n = read_some(in, buf.data(), buf.size());
    if (n < 0) fail_errno(errno, "read " + path);
    if (n == 0) break;
    total += n;
    json chunk{{"type", "chunk"}, {"data", base64::encode(std::string_view(buf.data(), static_cast<size_t>(n)))}};
    if (!send_frame(fd, chunk)) return;  // client went away
  }
  send_frame(fd, json{{"type", "result"}, {"size", total}});
}

void handle_write(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  if (!req.contains("data")) fail("invalid_argument", "missing required field: data");
  std::string data = decode_data(req);
  fs_identity as(user);
  make_dirs(parent_of(path));
  int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
  if (out < 0) {
    if (errno == EISDIR) fail("invalid_argument", "path is a directory: " + path);
    fail_errno(errno, "write " + path);
  }
  {
    fd_closer guard(out);
    write_fully(out, data.data(), data.size(), path);
  }
  send_frame(fd, json{{"type", "result"}, {"entry", entry_for(path)}});
}

void handle_write_stream(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  if (path == "/") fail("invalid_argument", "path is a directory: /");
  fs_identity as(user);
  bool client_done = false;  // saw {"end":true} or the client went away
  try {
    make_dirs(parent_of(path));
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) fail("invalid_argument", "path is a directory: " + path);
    // Written in place, as envd does: a watcher of the directory sees the
    // file itself created and written, not a temporary name renamed.
    int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
    if (out < 0) fail_errno(errno, "write " + path);
    fd_closer guard(out);
    for (;;) {
      json frame;
      io_status s = read_frame(fd, frame, clock::now() + kUploadIdleTimeout);
      if (s != io_status::ok) {
        client_done = true;
        if (s == io_status::eof || s == io_status::error || s == io_status::timeout)
          fail("invalid_argument", "upload ended without {\"end\":true}");
        fail("invalid_argument", std::string("bad upload frame: ") + to_string(s));
      }
      if (frame.value("end", false) == true) {
        client_done = true;
        break;
      }
      std::string bytes = decode_data(frame);
      write_fully(out, bytes.data(), bytes.size(), path);
    }
    write_metadata(path, req.contains("metadata") && req["metadata"].is_object() ? req["metadata"] : json::object());
  } catch (const agent_error& e) {
    send_frame(fd, error_frame(e.code, e.what()));
    if (!client_done) {
      // Let the client finish sending so it can read our answer.
      auto until = clock::now() + std::chrono::seconds(30);
      json frame;
      while (read_frame(fd, frame, until) == io_status::ok && frame.value("end", false) != true) {
      }
    }
    return;
  }
  send_frame(fd, json{{"type", "result"}, {"entry", entry_for(path)}});
}

void handle_mkdir(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  fs_identity as(user);
  bool created = make_dirs(path);
  send_frame(fd, json{{"type", "result"}, {"entry", entry_for(path)}, {"created", created}});
}

void handle_remove(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  if (path == "/") fail("invalid_argument", "refusing to remove /");
  fs_identity as(user);
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) {
    // Already gone is done when asked so (envd's Remove is a RemoveAll).
    if (errno == ENOENT && req.value("missing_ok", false) == true)
      return void(send_frame(fd, json{{"type", "result"}}));
    fail_path(errno, "remove", path);
  }
  if (S_ISDIR(st.st_mode)) {
    remove_tree_at(AT_FDCWD, path, path);
  } else if (::unlink(path.c_str()) < 0) {
    fail_path(errno, "remove", path);
  }
  send_frame(fd, json{{"type", "result"}});
}

void handle_move(int fd, const json& req) {
  user_info user = request_user(req);
  std::string from = resolve_path(user, required_string(req, "from"));
  std::string to = resolve_path(user, required_string(req, "to"));
  fs_identity as(user);
  struct stat st;
  if (::lstat(from.c_str(), &st) < 0) fail_path(errno, "move", from);
  make_dirs(parent_of(to));
  if (::rename(from.c_str(), to.c_str()) < 0) {
    int err = errno;
    if (err != EXDEV) fail_errno(err, "move " + from + " to " + to);
    if (!S_ISREG(st.st_mode)) fail("invalid_argument", "cannot move non-regular files across filesystems: " + from);
    copy_file(from, to);
    if (::unlink(from.c_str()) < 0) fail_errno(errno, "remove " + from);
  }
  send_frame(fd, json{{"type", "result"}, {"entry", entry_for(to)}});
}

}  // namespace sandboxd::agent
