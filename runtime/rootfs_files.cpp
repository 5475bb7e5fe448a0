#include "runtime/rootfs_files.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/fd_closer.hpp"

namespace sandboxd {

namespace {

result<int> open_in_root(const std::string& rootfs, const std::string& path, uint64_t flags) {
  fd_closer root{::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
  if (root.get() < 0)
    return internal_error(errno_text("open " + rootfs));
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  int fd = static_cast<int>(::syscall(SYS_openat2, root.get(), path.c_str(), &how, sizeof how));
  if (fd < 0)
    return failure{errno == ENOENT ? 404 : 500, errno_text("open " + rootfs + "/" + path)};
  return fd;
}

} // namespace

status write_in_rootfs(const std::string& rootfs, const std::string& dir, const std::string& name,
                       const std::string& text) {
  auto d = open_in_root(rootfs, dir, O_PATH | O_DIRECTORY);
  if (!d)
    return d.error();
  fd_closer parent{*d};
  auto tmp = "." + name + ".sandboxd";
  ::unlinkat(parent.get(), tmp.c_str(), 0);
  int fd = ::openat(parent.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0644);
  if (fd < 0)
    return internal_error(errno_text("create " + dir + "/" + name));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size())
            && ::fchmod(fd, 0644) == 0;
  ::close(fd);
  // rename replaces whatever `name` is (a symlink too) without following it.
  ok = ok && ::renameat(parent.get(), tmp.c_str(), parent.get(), name.c_str()) == 0;
  int err = errno;
  if (!ok) {
    ::unlinkat(parent.get(), tmp.c_str(), 0);
    return internal_error("write " + dir + "/" + name + ": " + strerror(err));
  }
  return success();
}

result<std::string> read_in_rootfs(const std::string& rootfs, const std::string& path, size_t max) {
  auto f = open_in_root(rootfs, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  if (!f)
    return f.error();
  fd_closer file{*f};
  struct stat st{};
  if (::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return not_found(path + " is not a regular file");
  if (static_cast<size_t>(st.st_size) > max)
    return failure{413, path + " is larger than " + std::to_string(max) + " bytes"};
  std::string out(max + 1, '\0');
  size_t got = 0;
  for (;;) {
    ssize_t n = ::read(file.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return internal_error(errno_text("read " + path));
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
    if (got > max)
      return failure{413, path + " is larger than " + std::to_string(max) + " bytes"};
  }
  out.resize(got);
  return out;
}

} // namespace sandboxd
