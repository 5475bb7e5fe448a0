#include "runtime/volume_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/clock.hpp"
#include "core/ids.hpp"
#include "core/utf8_lossy.hpp"

namespace sandboxd::volume_files {

namespace {

constexpr const char* temp_prefix = ".sandboxd-upload-";
constexpr size_t max_name_bytes = 255;

// A failed call on `shown` (the client's path) as the API answers it.
failure from_errno(int err, const std::string& what, const std::string& shown) {
  auto text = what + " " + shown + ": " + std::strerror(err);
  switch (err) {
  case ENOENT:
  case ENOTDIR:
    return not_found("path " + shown + " not found");
  case ELOOP:
    return bad_request(what + " " + shown + ": too many levels of symbolic links");
  case EXDEV:
    return bad_request(what + " " + shown + ": the path leaves the volume's filesystem");
  case ENAMETOOLONG:
    return bad_request(text);
  case EACCES:
  case EPERM:
    return failure{403, text};
  case EEXIST:
  case ENOTEMPTY:
  case EISDIR:
  case EBUSY:
    return conflict(text);
  case ENOSPC:
  case EDQUOT:
    return failure{507, what + " " + shown + ": the volume is full"};
  case EFBIG:
    return failure{413, what + " " + shown + ": the file is too large for the volume"};
  default:
    return internal_error(text);
  }
}

std::string shown_path(const std::string& rel) {
  return "/" + rel;
}

// Where `rel` (normalized; "" the root) is, resolved from `root` without ever
// leaving it. EAGAIN (a concurrent rename during a RESOLVE_IN_ROOT walk) is
// retried. The errno on failure.
int open_in_root(int root, const std::string& rel, int flags, int& err) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  const char* p = rel.empty() ? "." : rel.c_str();
  for (int attempt = 0; attempt < 16; ++attempt) {
    long fd = ::syscall(SYS_openat2, root, p, &how, sizeof how);
    if (fd >= 0)
      return static_cast<int>(fd);
    if (errno != EAGAIN && errno != EINTR)
      break;
  }
  err = errno;
  return -1;
}

// "a/b/c" → {"a/b", "c"}; "c" → {"", "c"}.
std::pair<std::string, std::string> split_last(const std::string& rel) {
  auto slash = rel.rfind('/');
  if (slash == std::string::npos)
    return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

std::vector<std::string> parts_of(const std::string& rel) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < rel.size()) {
    auto slash = rel.find('/', at);
    if (slash == std::string::npos)
      slash = rel.size();
    out.push_back(rel.substr(at, slash - at));
    at = slash + 1;
  }
  return out;
}

// The directory that holds `rel`'s last component.
result<fd_closer> open_parent(int root, const std::string& rel, const std::string& what) {
  int err = 0;
  fd_closer fd{open_in_root(root, split_last(rel).first, O_RDONLY | O_DIRECTORY, err)};
  if (fd.get() < 0)
    return from_errno(err, what, shown_path(rel));
  return result<fd_closer>{std::move(fd)};
}

int64_t to_ms(const timespec& t) {
  // Years 0001..9999: a sandbox may set any time, RFC 3339 has four digits.
  constexpr int64_t lo = -62135596800LL, hi = 253402300799LL;
  int64_t s = std::clamp<int64_t>(t.tv_sec, lo, hi);
  return s * 1000 + (s == t.tv_sec ? t.tv_nsec / 1000000 : 0);
}

const char* type_of(mode_t m) {
  if (S_ISREG(m))
    return "file";
  if (S_ISDIR(m))
    return "directory";
  if (S_ISLNK(m))
    return "symlink";
  return "unknown";
}

entry_stat make_stat(const struct stat& st, std::string name, std::string path) {
  entry_stat e;
  e.name = std::move(name);
  e.path = std::move(path);
  e.type = type_of(st.st_mode);
  e.size = st.st_size;
  e.mode = st.st_mode & 07777;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.atime_ms = to_ms(st.st_atim);
  e.mtime_ms = to_ms(st.st_mtim);
  e.ctime_ms = to_ms(st.st_ctim);
  return e;
}

// A symlink's target, at most PATH_MAX bytes (longer ones do not exist).
std::optional<std::string> link_target(int dir, const std::string& name) {
  char buf[4096];
  auto n = ::readlinkat(dir, name.c_str(), buf, sizeof buf);
  if (n < 0)
    return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

// The stat of `name` in `dir`, not following it.
result<entry_stat> stat_at(int dir, const std::string& name, const std::string& shown) {
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return from_errno(errno, "cannot stat", shown);
  auto e = make_stat(st, name, shown);
  if (S_ISLNK(st.st_mode))
    e.target = link_target(dir, name);
  return e;
}

result<entry_stat> stat_fd(int fd, const std::string& name, const std::string& shown) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return from_errno(errno, "cannot stat", shown);
  return make_stat(st, name, shown);
}

// Owner, then mode (a chown clears setuid bits: none are ever set here).
status apply(int fd, uint32_t uid, uint32_t gid, std::optional<uint32_t> mode,
             const std::string& shown) {
  if (::fchown(fd, uid, gid) != 0)
    return from_errno(errno, "cannot change the owner of", shown);
  if (mode && ::fchmod(fd, *mode) != 0)
    return from_errno(errno, "cannot change the mode of", shown);
  return success();
}

// Bytes into `fd`, all of them.
status write_all(int fd, const char* data, size_t size, const std::string& shown) {
  for (size_t done = 0; done < size;) {
    auto n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return from_errno(errno, "cannot write", shown);
    done += static_cast<size_t>(n);
  }
  return success();
}

// -- listing --------------------------------------------------------------

struct lister {
  dev_t dev;
  unsigned depth;
  std::vector<entry_stat>& out;
  std::string shown_root;

  // The entries of the directory `fd` (taken over), `level` deep.
  status walk(int fd, const std::string& prefix, unsigned level) {
    DIR* d = ::fdopendir(fd);
    if (!d) {
      auto err = errno;
      ::close(fd);
      return from_errno(err, "cannot list", prefix.empty() ? "/" : prefix);
    }
    std::unique_ptr<DIR, int (*)(DIR*)> closer{d, ::closedir};
    std::vector<std::string> names;
    errno = 0;
    while (auto* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..")
        continue;
      if (out.size() + names.size() >= max_list_entries)
        return bad_request("the listing of " + shown_root + " holds more than "
                           + std::to_string(max_list_entries)
                           + " entries: list a deeper path or with a smaller depth");
      names.push_back(std::move(n));
      errno = 0;
    }
    if (errno != 0)
      return from_errno(errno, "cannot list", prefix.empty() ? "/" : prefix);
    std::sort(names.begin(), names.end());
    int dfd = ::dirfd(d);
    for (auto& n : names) {
      auto shown = prefix + "/" + n;
      auto e = stat_at(dfd, n, shown);
      if (!e) {
        if (e.error().status == 404)
          continue; // removed meanwhile
        return e.error();
      }
      bool is_dir = e->type == "directory";
      out.push_back(std::move(*e));
      if (!is_dir || level >= depth)
        continue;
      // Descended without following: a directory swapped for a symlink since
      // the stat fails here, and is skipped like one.
      int child = ::openat(dfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
          continue;
        return from_errno(errno, "cannot open", shown);
      }
      struct stat st {};
      if (::fstat(child, &st) != 0 || st.st_dev != dev) { // another filesystem: not entered
        ::close(child);
        continue;
      }
      if (auto st2 = walk(child, shown, level + 1); !st2)
        return st2;
    }
    return success();
  }
};

// -- removal --------------------------------------------------------------

// Empties the directory `fd` (taken over), never following a symlink.
status empty_dir(int fd, const std::string& shown, unsigned level) {
  if (level > max_remove_depth) {
    ::close(fd);
    return bad_request("cannot remove " + shown + ": more than "
                       + std::to_string(max_remove_depth) + " levels deep");
  }
  DIR* d = ::fdopendir(fd);
  if (!d) {
    auto err = errno;
    ::close(fd);
    return from_errno(err, "cannot list", shown);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer{d, ::closedir};
  int dfd = ::dirfd(d);
  // In batches, rereading from the start: removing entries while reading a
  // directory may skip some.
  constexpr size_t batch = 1024;
  for (;;) {
    ::rewinddir(d);
    std::vector<std::string> names;
    errno = 0;
    while (names.size() < batch) {
      auto* e = ::readdir(d);
      if (!e)
        break;
      std::string n = e->d_name;
      if (n != "." && n != "..")
        names.push_back(std::move(n));
      errno = 0;
    }
    if (errno != 0)
      return from_errno(errno, "cannot list", shown);
    if (names.empty())
      return success();
    for (auto& n : names) {
      auto child_shown = shown + "/" + n;
      struct stat st {};
      if (::fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
          continue;
        return from_errno(errno, "cannot stat", child_shown);
      }
      if (S_ISDIR(st.st_mode)) {
        int child = ::openat(dfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0)
          return from_errno(errno == ELOOP ? ENOTEMPTY : errno, "cannot remove", child_shown);
        if (auto s = empty_dir(child, child_shown, level + 1); !s)
          return s;
        if (::unlinkat(dfd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
          return from_errno(errno, "cannot remove", child_shown);
      } else if (::unlinkat(dfd, n.c_str(), 0) != 0 && errno != ENOENT) {
        return from_errno(errno, "cannot remove", child_shown);
      }
    }
  }
}

bool exists_at(int dir, const std::string& name, struct stat& st) {
  return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

} // namespace

nlohmann::json to_json(const entry_stat& e) {
  nlohmann::json j{
    {"name", utf8_lossy(e.name)},
    {"type", e.type},
    {"path", utf8_lossy(e.path)},
    {"size", e.size},
    {"mode", e.mode},
    {"uid", e.uid},
    {"gid", e.gid},
    {"atime", to_rfc3339(e.atime_ms)},
    {"mtime", to_rfc3339(e.mtime_ms)},
    {"ctime", to_rfc3339(e.ctime_ms)},
  };
  if (e.target)
    j["target"] = utf8_lossy(*e.target);
  return j;
}

nlohmann::json to_json(const std::vector<entry_stat>& entries) {
  auto j = nlohmann::json::array();
  for (auto& e : entries)
    j.push_back(to_json(e));
  return j;
}

result<std::string> normalize(const std::string& path) {
  if (path.empty())
    return bad_request("path is required");
  if (path.size() > max_path_bytes)
    return bad_request("path is longer than " + std::to_string(max_path_bytes) + " bytes");
  if (path.find('\0') != std::string::npos)
    return bad_request("path holds a NUL byte");
  std::vector<std::string> kept;
  for (auto& part : parts_of(path)) {
    if (part.empty() || part == ".")
      continue;
    if (part == "..") {
      if (!kept.empty())
        kept.pop_back();
      continue;
    }
    if (part.size() > max_name_bytes)
      return bad_request("a part of path is longer than " + std::to_string(max_name_bytes)
                         + " bytes");
    kept.push_back(part);
  }
  std::string out;
  for (auto& k : kept) {
    if (!out.empty())
      out += '/';
    out += k;
  }
  return out;
}

status check(const attributes& a) {
  if (a.uid && *a.uid > max_id)
    return bad_request("uid must be at most " + std::to_string(max_id));
  if (a.gid && *a.gid > max_id)
    return bad_request("gid must be at most " + std::to_string(max_id));
  if (a.mode && *a.mode > max_mode)
    return bad_request("mode must be at most 07777 (permission bits)");
  if (a.mode && (*a.mode & (S_ISUID | S_ISGID)))
    return bad_request("setuid and setgid bits are not allowed in volumes");
  return success();
}

result<entry_stat> stat(int root, const std::string& path) {
  auto rel = normalize(path);
  if (!rel)
    return rel.error();
  if (rel->empty())
    return stat_fd(root, "/", "/");
  auto parent = open_parent(root, *rel, "cannot stat");
  if (!parent)
    return parent.error();
  return stat_at(parent->get(), split_last(*rel).second, shown_path(*rel));
}

result<std::vector<entry_stat>> list(int root, const std::string& path, unsigned depth) {
  if (depth < 1 || depth > max_list_depth)
    return bad_request("depth must be 1 to " + std::to_string(max_list_depth));
  auto rel = normalize(path);
  if (!rel)
    return rel.error();
  auto shown = shown_path(*rel);
  int err = 0;
  int fd = open_in_root(root, *rel, O_RDONLY | O_DIRECTORY, err);
  if (fd < 0) {
    if (err == ENOTDIR) { // the last part is no directory (an earlier one: not found)
      auto s = stat(root, path);
      if (s && s->type != "directory")
        return bad_request("path " + shown + " is not a directory");
    }
    return from_errno(err, "cannot list", shown);
  }
  struct stat st {};
  if (::fstat(root, &st) != 0) {
    ::close(fd);
    return internal_error(errno_text("cannot stat the volume's root"));
  }
  std::vector<entry_stat> out;
  lister l{st.st_dev, depth, out, shown};
  if (auto s = l.walk(fd, rel->empty() ? "" : shown, 1); !s)
    return s.error();
  return out;
}

result<entry_stat> make_dir(int root, const std::string& path, const attributes& a, bool parents) {
  if (auto c = check(a); !c)
    return c.error();
  auto rel = normalize(path);
  if (!rel)
    return rel.error();
  uint32_t uid = a.uid.value_or(default_uid), gid = a.gid.value_or(default_gid);
  uint32_t mode = a.mode.value_or(default_dir_mode);
  if (rel->empty()) {
    if (!parents)
      return conflict("path / already exists");
    return stat_fd(root, "/", "/");
  }
  auto parts = parts_of(*rel);
  // Each prefix resolved from the root (a symlink among them inside it);
  // created where missing when `parents`, else only the last.
  fd_closer cur;
  std::string prefix;
  for (size_t i = 0; i < parts.size(); ++i) {
    prefix += (i ? "/" : "") + parts[i];
    bool last = i + 1 == parts.size();
    auto shown = shown_path(prefix);
    int err = 0;
    fd_closer fd{open_in_root(root, prefix, O_RDONLY | O_DIRECTORY, err)};
    if (fd.get() >= 0) {
      if (last) {
        if (!parents)
          return conflict("path " + shown + " already exists");
        return stat_fd(fd.get(), parts[i], shown);
      }
      cur = std::move(fd);
      continue;
    }
    if (err != ENOENT) {
      if (err == ENOTDIR && last)
        return conflict("path " + shown + " already exists and is not a directory");
      return from_errno(err, "cannot create", shown);
    }
    if (!last && !parents)
      return not_found("path " + shown + " not found (force creates missing parents)");
    int dir = i == 0 ? root : cur.get();
    if (::mkdirat(dir, parts[i].c_str(), 0700) != 0) {
      if (errno == EEXIST) // a dangling symlink, or made meanwhile
        return conflict("path " + shown + " already exists and is not a directory");
      return from_errno(errno, "cannot create", shown);
    }
    fd_closer made{::openat(dir, parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (made.get() < 0)
      return from_errno(errno == ELOOP ? EEXIST : errno, "cannot open", shown);
    if (auto s = apply(made.get(), uid, gid, mode, shown); !s)
      return s.error();
    if (last)
      return stat_fd(made.get(), parts[i], shown);
    cur = std::move(made);
  }
  return internal_error("unreachable"); // the loop returns at the last part
}

result<entry_stat> update(int root, const std::string& path, const attributes& a) {
  if (auto c = check(a); !c)
    return c.error();
  auto rel = normalize(path);
  if (!rel)
    return rel.error();
  auto shown = shown_path(*rel);
  uid_t uid = a.uid ? *a.uid : static_cast<uid_t>(-1);
  gid_t gid = a.gid ? *a.gid : static_cast<gid_t>(-1);
  fd_closer parent;
  std::string name = "/";
  fd_closer fd;
  if (rel->empty()) {
    fd = fd_closer{::openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (fd.get() < 0)
      return from_errno(errno, "cannot open", shown);
  } else {
    auto p = open_parent(root, *rel, "cannot change");
    if (!p)
      return p.error();
    parent = std::move(*p);
    name = split_last(*rel).second;
    struct stat st {};
    if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return from_errno(errno, "cannot stat", shown);
    if (S_ISLNK(st.st_mode)) {
      if (a.mode)
        return bad_request("path " + shown + " is a symlink: it has no mode of its own");
      if (::fchownat(parent.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
        return from_errno(errno, "cannot change the owner of", shown);
      return stat_at(parent.get(), name, shown);
    }
    // Opened without following (a symlink swapped in since the stat fails)
    // and without blocking (a FIFO).
    fd = fd_closer{::openat(parent.get(), name.c_str(),
                            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)};
    if (fd.get() < 0) {
      if (errno == ELOOP)
        return conflict("path " + shown + " changed meanwhile");
      if (errno == ENXIO || errno == EACCES)
        return bad_request("path " + shown + " is neither a file nor a directory");
      return from_errno(errno, "cannot open", shown);
    }
  }
  if (::fchown(fd.get(), uid, gid) != 0)
    return from_errno(errno, "cannot change the owner of", shown);
  if (a.mode && ::fchmod(fd.get(), *a.mode) != 0)
    return from_errno(errno, "cannot change the mode of", shown);
  return stat_fd(fd.get(), name, shown);
}

status remove(int root, const std::string& path) {
  auto rel = normalize(path);
  if (!rel)
    return rel.error();
  if (rel->empty())
    return bad_request("the volume's root cannot be removed");
  auto shown = shown_path(*rel);
  auto parent = open_parent(root, *rel, "cannot remove");
  if (!parent)
    return parent.error();
  auto name = split_last(*rel).second;
  struct stat st {};
  if (::fstatat(parent->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return from_errno(errno, "cannot remove", shown);
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(parent->get(), name.c_str(), 0) != 0)
      return from_errno(errno, "cannot remove", shown);
    return success();
  }
  int fd = ::openat(parent->get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return from_errno(errno == ELOOP ? EBUSY : errno, "cannot remove", shown);
  if (auto s = empty_dir(fd, shown, 1); !s)
    return s;
  if (::unlinkat(parent->get(), name.c_str(), AT_REMOVEDIR) != 0)
    return from_errno(errno, "cannot remove", shown);
  return success();
}

result<opened_file> open_file(int root, const std::string& path) {
  auto rel = normalize(path);
  if (!rel)
    return rel.error();
  auto shown = shown_path(*rel);
  if (rel->empty())
    return bad_request("path / is a directory");
  int err = 0;
  fd_closer fd{open_in_root(root, *rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, err)};
  if (fd.get() < 0) {
    if (err == ENXIO)
      return bad_request("path " + shown + " is not a regular file");
    return from_errno(err, "cannot read", shown);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return from_errno(errno, "cannot stat", shown);
  if (S_ISDIR(st.st_mode))
    return bad_request("path " + shown + " is a directory");
  if (!S_ISREG(st.st_mode))
    return bad_request("path " + shown + " is not a regular file");
  opened_file f;
  f.fd = std::move(fd);
  f.size = static_cast<uint64_t>(st.st_size);
  return f;
}

bool is_upload_temp(const std::string& name) {
  return name.rfind(temp_prefix, 0) == 0;
}

result<upload> upload::begin(int root, const std::string& path, const attributes& a, bool force) {
  if (auto c = check(a); !c)
    return c.error();
  auto rel = normalize(path);
  if (!rel)
    return rel.error();
  auto shown = shown_path(*rel);
  if (rel->empty())
    return conflict("path / is a directory");
  auto parent = open_parent(root, *rel, "cannot write");
  if (!parent)
    return parent.error();
  auto name = split_last(*rel).second;
  if (is_upload_temp(name))
    return bad_request("names starting with " + std::string{temp_prefix} + " are reserved");
  struct stat st {};
  if (exists_at(parent->get(), name, st)) {
    if (S_ISDIR(st.st_mode))
      return conflict("path " + shown + " is a directory");
    if (!force)
      return conflict("path " + shown + " already exists (force overwrites it)");
  }
  upload u;
  u.dir_ = std::move(*parent);
  u.name_ = name;
  u.shown_ = shown;
  u.force_ = force;
  u.mode_ = a.mode.value_or(default_file_mode);
  u.temp_ = temp_prefix + random_hex(8);
  u.file_ = fd_closer{::openat(u.dir_.get(), u.temp_.c_str(),
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
  if (u.file_.get() < 0) {
    u.done_ = true; // nothing was made
    return from_errno(errno, "cannot write", shown);
  }
  if (::fchown(u.file_.get(), a.uid.value_or(default_uid), a.gid.value_or(default_gid)) != 0)
    return from_errno(errno, "cannot change the owner of", shown); // u's destructor removes it
  return result<upload>{std::move(u)};
}

upload::upload(upload&& o) noexcept
  : dir_(std::move(o.dir_)), file_(std::move(o.file_)), temp_(std::move(o.temp_)),
    name_(std::move(o.name_)), shown_(std::move(o.shown_)), mode_(o.mode_), force_(o.force_),
    done_(o.done_), written_(o.written_) {
  o.done_ = true;
}

upload::~upload() {
  discard();
}

void upload::discard() {
  file_ = fd_closer{};
  if (!done_ && dir_.get() >= 0) {
    done_ = true;
    ::unlinkat(dir_.get(), temp_.c_str(), 0); // only ever that name, in that directory
  }
}

status upload::write(const char* data, size_t size) {
  if (done_ || file_.get() < 0)
    return internal_error("the upload of " + shown_ + " was abandoned");
  if (auto s = write_all(file_.get(), data, size, shown_); !s) {
    discard();
    return s;
  }
  written_ += size;
  return success();
}

result<entry_stat> upload::commit() {
  if (done_ || file_.get() < 0)
    return internal_error("the upload of " + shown_ + " was abandoned");
  auto fail = [&](const failure& f) -> result<entry_stat> {
    discard();
    return f;
  };
  if (::fsync(file_.get()) != 0)
    return fail(from_errno(errno, "cannot write", shown_));
  if (::fchmod(file_.get(), mode_) != 0)
    return fail(from_errno(errno, "cannot change the mode of", shown_));
  // Without force, an entry made since begin() is not replaced.
  unsigned flags = force_ ? 0 : RENAME_NOREPLACE;
  if (::renameat2(dir_.get(), temp_.c_str(), dir_.get(), name_.c_str(), flags) != 0) {
    auto err = errno;
    if (err == EEXIST)
      return fail(conflict("path " + shown_ + " already exists (force overwrites it)"));
    if (err == EISDIR || err == ENOTEMPTY)
      return fail(conflict("path " + shown_ + " is a directory"));
    return fail(from_errno(err, "cannot write", shown_));
  }
  done_ = true;
  auto e = stat_fd(file_.get(), name_, shown_);
  file_ = fd_closer{};
  return e;
}

} // namespace sandboxd::volume_files
