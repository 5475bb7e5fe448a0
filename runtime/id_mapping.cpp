#include "runtime/id_mapping.hpp"
#include "runtime/mount_point.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/fd_closer.hpp"

namespace sandboxd {

namespace {

bool write_all(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// The namespace's only process: it waits to be killed once its namespace is
// open. It shares our memory (CLONE_VM), so it touches nothing.
int hold_namespace(void*) {
  for (;;)
    ::pause();
  return 0;
}

} // namespace

id_ranges::id_ranges(std::string lock_file, uint32_t first_base, uint32_t slots)
  : lock_file_(std::move(lock_file)), first_base_(first_base), slots_(slots) {}

id_ranges::~id_ranges() {
  if (fd_ >= 0)
    ::close(fd_);
}

status id_ranges::open_lock_file() {
  if (fd_ >= 0)
    return success();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path{lock_file_}.parent_path(), ec);
  fd_ = ::open(lock_file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0)
    return internal_error(errno_text("cannot open the id range locks " + lock_file_));
  return success();
}

bool id_ranges::lock_slot(uint32_t slot, bool take) {
  struct flock fl{};
  fl.l_type = take ? F_WRLCK : F_UNLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = slot;
  fl.l_len = 1;
  return ::fcntl(fd_, F_OFD_SETLK, &fl) == 0;
}

result<id_range> id_ranges::acquire(const std::string& sandbox) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto st = open_lock_file(); !st)
    return st.error();
  if (auto it = held_.find(sandbox); it != held_.end())
    return id_range{first_base_ + it->second * id_range_size};
  // Our own ranges hold locks on our fd, which never conflict with
  // themselves: skip those by the map, the other servers' by the lock.
  std::map<uint32_t, bool> ours;
  for (auto& [_, slot] : held_)
    ours[slot] = true;
  for (uint32_t i = 0; i < slots_; ++i) {
    uint32_t slot = (next_ + i) % slots_;
    if (ours.count(slot) || !lock_slot(slot, true))
      continue;
    held_[sandbox] = slot;
    next_ = (slot + 1) % slots_;
    return id_range{first_base_ + slot * id_range_size};
  }
  return failure{503, "no free user id range for a new sandbox (" + std::to_string(slots_)
                        + " ranges are all held by the sandboxes on this host)"};
}

status id_ranges::adopt(const std::string& sandbox, id_range r) {
  if (r.base < first_base_ || (r.base - first_base_) % id_range_size != 0
      || (r.base - first_base_) / id_range_size >= slots_)
    return bad_request("id range " + std::to_string(r.base) + " is not one of ours");
  uint32_t slot = (r.base - first_base_) / id_range_size;
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto st = open_lock_file(); !st)
    return st;
  for (auto& [other, s] : held_)
    if (s == slot && other != sandbox)
      return conflict("id range " + std::to_string(r.base) + " is held by " + other);
  if (!lock_slot(slot, true))
    return conflict("id range " + std::to_string(r.base)
                    + " was taken by another sandboxd on this host");
  held_[sandbox] = slot;
  return success();
}

result<id_range> id_ranges::of(const std::string& sandbox) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = held_.find(sandbox);
  if (it == held_.end())
    return not_found("sandbox " + sandbox + " holds no id range");
  return id_range{first_base_ + it->second * id_range_size};
}

void id_ranges::release(const std::string& sandbox) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = held_.find(sandbox);
  if (it == held_.end())
    return;
  lock_slot(it->second, false);
  held_.erase(it);
}

result<int> user_namespace_fd(id_range r) {
  constexpr size_t stack_size = 64 * 1024;
  void* stack = ::mmap(nullptr, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED)
    return internal_error(errno_text("mmap"));
  pid_t pid = ::clone(hold_namespace, static_cast<char*>(stack) + stack_size,
                      CLONE_NEWUSER | CLONE_VM | SIGCHLD, nullptr);
  if (pid < 0) {
    auto err = errno_text("clone(CLONE_NEWUSER)");
    ::munmap(stack, stack_size);
    return internal_error(err);
  }
  auto map = "0 " + std::to_string(r.base) + " " + std::to_string(id_range_size) + "\n";
  auto proc = "/proc/" + std::to_string(pid);
  std::string err;
  int fd = -1;
  if (!write_all(proc + "/uid_map", map))
    err = errno_text("write uid_map");
  else if (!write_all(proc + "/gid_map", map))
    err = errno_text("write gid_map");
  else if ((fd = ::open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC)) < 0)
    err = errno_text("open user namespace");
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  ::munmap(stack, stack_size);
  if (!err.empty())
    return internal_error(err);
  return fd;
}

result<int> idmapped_tree(const std::string& source, int userns_fd, bool read_only) {
  fd_closer tree{static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, source.c_str(),
                                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC))};
  if (tree.get() < 0)
    return internal_error(errno_text("open_tree " + source));
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
                  | (read_only ? MOUNT_ATTR_RDONLY : 0);
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0)
    return internal_error(errno_text("idmap " + source));
  return tree.release();
}

status idmapped_mount(const std::string& source, const std::string& target, int userns_fd,
                      bool read_only) {
  auto tree = idmapped_tree(source, userns_fd, read_only);
  if (!tree)
    return tree.error();
  fd_closer fd{*tree};
  return attach_mount(fd.get(), target, source);
}

status as_range_root(id_range r, const std::function<status()>& fn) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct saved[2]{};
  if (::syscall(SYS_capget, &header, saved) != 0)
    return internal_error(errno_text("capget"));
  // setfsuid/setfsgid and capset act on the calling thread only.
  auto old_gid = static_cast<gid_t>(::setfsgid(r.base));
  auto old_uid = static_cast<uid_t>(::setfsuid(r.base));
  // A non-zero fsuid drops the file capabilities (DAC override, chown, ...)
  // from the effective set; the overlay needs them to copy up any file.
  __user_cap_data_struct raised[2] = {saved[0], saved[1]};
  raised[0].effective = raised[0].permitted;
  raised[1].effective = raised[1].permitted;
  status st = success();
  bool entered = static_cast<uint32_t>(::setfsuid(static_cast<uid_t>(-1))) == r.base
                 && static_cast<uint32_t>(::setfsgid(static_cast<gid_t>(-1))) == r.base;
  if (!entered)
    st = internal_error("cannot take the file-system ids of range " + std::to_string(r.base));
  else if (::syscall(SYS_capset, &header, raised) != 0)
    st = internal_error(errno_text("capset"));
  else
    st = fn();
  ::setfsuid(old_uid);
  ::setfsgid(old_gid);
  ::syscall(SYS_capset, &header, saved);
  return st;
}

} // namespace sandboxd
