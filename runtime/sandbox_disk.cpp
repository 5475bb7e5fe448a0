#include "runtime/sandbox_disk.hpp"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/fd_closer.hpp"
#include "runtime/command.hpp"
#include "runtime/mount_point.hpp"

#include <spdlog/spdlog.h>

namespace fs = std::filesystem;

namespace sandboxd {

namespace {

// The kernel's lazy-init thread would zero every mounted disk's inode tables
// in the background (64 MB per sandbox at the default inode limit) and read
// all its block bitmaps ahead: work no sandbox needs (ext4 tracks which
// tables are unused; a bitmap is read when an allocation needs it).
constexpr const char* disk_flags[] = {"noinit_itable", "no_prefetch_block_bitmaps"};
constexpr const char* disk_options = "noinit_itable,no_prefetch_block_bitmaps";

// Copies only the data extents of a sparse file (a blank ext4 is a few MB
// of metadata in gigabytes of holes).
status sparse_copy(const std::string& from, const std::string& to) {
  fd_closer in{::open(from.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.get() < 0)
    return internal_error(errno_text("open " + from));
  struct stat st;
  if (::fstat(in.get(), &st) != 0)
    return internal_error(errno_text("stat " + from));
  fd_closer out{::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)};
  if (out.get() < 0)
    return internal_error(errno_text("create " + to));
  if (::ftruncate(out.get(), st.st_size) != 0)
    return internal_error(errno_text("size " + to));
  off_t pos = 0;
  for (;;) {
    off_t data = ::lseek(in.get(), pos, SEEK_DATA);
    if (data < 0)
      break; // ENXIO: no data past pos
    off_t hole = ::lseek(in.get(), data, SEEK_HOLE);
    if (hole < 0)
      return internal_error(errno_text("seek " + from));
    off_t src = data, dst = data;
    while (src < hole) {
      auto n = ::copy_file_range(in.get(), &src, out.get(), &dst,
                                 static_cast<size_t>(hole - src), 0);
      if (n <= 0)
        return internal_error(errno_text("copy " + from));
    }
    pos = hole;
  }
  return success();
}

// A free loop device bound to `image`, detached automatically when its
// filesystem is unmounted. Returns the device's open fd.
result<int> loop_attach(const std::string& image) {
  fd_closer img{::open(image.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW)};
  if (img.get() < 0)
    return internal_error(errno_text("open " + image));
  fd_closer ctl{::open("/dev/loop-control", O_RDWR | O_CLOEXEC)};
  if (ctl.get() < 0)
    return internal_error(errno_text("open /dev/loop-control"));
  for (int attempt = 0; attempt < 64; ++attempt) {
    int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0)
      return internal_error(errno_text("LOOP_CTL_GET_FREE"));
    auto dev = "/dev/loop" + std::to_string(n);
    int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0)
      return internal_error(errno_text("open " + dev));
    loop_config cfg{};
    cfg.fd = static_cast<uint32_t>(img.get());
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (::ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
      return fd;
    int err = errno;
    ::close(fd);
    if (err != EBUSY) // another process took it first: ask again
      return internal_error("LOOP_CONFIGURE " + dev + ": " + strerror(err));
  }
  return internal_error("no free loop device");
}

// `image` on a free loop device: its open fd and its minor number.
struct attached_loop {
  fd_closer dev;
  int minor = -1;
};
result<attached_loop> attach_loop(const std::string& image) {
  auto loop = loop_attach(image);
  if (!loop)
    return loop.error();
  attached_loop out{fd_closer{*loop}, -1};
  struct stat st;
  if (::fstat(out.dev.get(), &st) != 0)
    return internal_error(errno_text("stat the loop device of " + image));
  out.minor = static_cast<int>(minor(st.st_rdev));
  return out;
}

// The loop device a disk was last attached to, kept beside the image (a
// host-only file: the sandbox never sees its directory).
std::string loop_record(const std::string& dir) { return dir + "/disk.loop"; }

void write_loop_record(const std::string& dir, int minor) {
  std::ofstream out(loop_record(dir), std::ios::trunc);
  out << minor << "\n";
}

// Whether loop device `n` still serves `image`: its filesystem is still
// alive somewhere (a mount namespace copied while it was mounted, such as
// another sandbox's being set up, holds it until that copy goes).
// `image` and `real` are the image's path as given and as resolved.
bool loop_serves(int n, const std::string& image, const std::string& real) {
  std::ifstream in("/sys/block/loop" + std::to_string(n) + "/loop/backing_file");
  std::string backing;
  return in && std::getline(in, backing) && (backing == image || backing == real);
}

// Waits until the filesystem of the last attach of `image` is gone. Two
// live ext4 instances on one image would each believe the disk theirs: the
// newer would not see what the older still holds, and the older's late
// writes would corrupt it.
status wait_released(const std::string& dir, const std::string& image) {
  std::ifstream in(loop_record(dir));
  int n = -1;
  if (!(in >> n) || n < 0)
    return success();
  std::error_code ec;
  auto real = fs::canonical(image, ec).string();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (loop_serves(n, image, real)) {
    if (std::chrono::steady_clock::now() > deadline)
      return failure{503, "the sandbox's disk is still in use by the host (loop" + std::to_string(n)
                            + "); retry in a moment"};
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return success();
}

} // namespace

sandbox_disks::sandbox_disks(std::string cache_dir) : cache_dir_(std::move(cache_dir)) {}

sandbox_disks::~sandbox_disks() {
  std::lock_guard<std::mutex> guard{ready_mtx_};
  std::error_code ec;
  for (auto& d : ready_) {
    d.mount = fd_closer{}; // the last reference: the filesystem and its loop device go
    fs::remove(d.image, ec);
  }
  ready_.clear();
}

void sandbox_disks::keep_ready(size_t count, const disk_limits& limits) {
  std::lock_guard<std::mutex> guard{ready_mtx_};
  std::error_code ec;
  fs::remove_all(ready_dir(), ec);
  ready_wanted_ = count;
  ready_limits_ = limits;
}

bool sandbox_disks::short_of_ready() const {
  std::lock_guard<std::mutex> guard{ready_mtx_};
  return ready_.size() + ready_making_ < ready_wanted_;
}

size_t sandbox_disks::ready() const {
  std::lock_guard<std::mutex> guard{ready_mtx_};
  return ready_.size();
}

status sandbox_disks::make_ready() {
  disk_limits limits;
  std::string image;
  {
    std::lock_guard<std::mutex> guard{ready_mtx_};
    if (ready_.size() + ready_making_ >= ready_wanted_)
      return success();
    ++ready_making_;
    limits = ready_limits_;
    // Named after this process too: a restart never reuses a dead one's names.
    image = ready_dir() + "/" + std::to_string(::getpid()) + "-" + std::to_string(ready_serial_++) + ".img";
  }
  ready_disk disk;
  disk.image = image;
  auto made = [&]() -> status {
    auto blank = blank_image(limits);
    if (!blank)
      return blank.error();
    std::error_code ec;
    fs::create_directories(ready_dir(), ec);
    ::chmod(ready_dir().c_str(), 0700);
    if (auto st = sparse_copy(*blank, image); !st)
      return st;
    auto loop = attach_loop(image);
    if (!loop)
      return loop.error();
    auto& dev = loop->dev;
    disk.loop_minor = loop->minor;
    // Mounted detached: the filesystem exists, in no mount namespace.
    fd_closer fsfd{static_cast<int>(::syscall(SYS_fsopen, "ext4", FSOPEN_CLOEXEC))};
    if (fsfd.get() < 0)
      return internal_error(errno_text("fsopen ext4"));
    auto source = "/proc/self/fd/" + std::to_string(dev.get());
    if (::syscall(SYS_fsconfig, fsfd.get(), FSCONFIG_SET_STRING, "source", source.c_str(), 0) != 0)
      return internal_error(errno_text("mount the disk " + image));
    for (auto flag : disk_flags)
      if (::syscall(SYS_fsconfig, fsfd.get(), FSCONFIG_SET_FLAG, flag, nullptr, 0) != 0)
        return internal_error(errno_text("mount the disk " + image + " with " + flag));
    if (::syscall(SYS_fsconfig, fsfd.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
      return internal_error(errno_text("mount the disk " + image));
    disk.mount = fd_closer{static_cast<int>(::syscall(
      SYS_fsmount, fsfd.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV))};
    if (disk.mount.get() < 0)
      return internal_error(errno_text("fsmount the disk " + image));
    return success();
  }();
  std::lock_guard<std::mutex> guard{ready_mtx_};
  --ready_making_;
  if (!made) {
    disk.mount = fd_closer{};
    std::error_code ec;
    fs::remove(image, ec);
    return made;
  }
  ready_.push_back(std::move(disk));
  return success();
}

bool sandbox_disks::place_ready(const std::string& dir, const std::string& image,
                                const std::string& mnt, const disk_limits& limits) {
  ready_disk disk;
  {
    std::lock_guard<std::mutex> guard{ready_mtx_};
    if (ready_.empty() || limits.bytes != ready_limits_.bytes
        || limits.inodes != ready_limits_.inodes)
      return false;
    disk = std::move(ready_.front());
    ready_.pop_front();
  }
  std::error_code ec;
  if (::rename(disk.image.c_str(), image.c_str()) != 0) {
    spdlog::warn("a disk made ahead could not move to {}: {}", dir, std::strerror(errno));
    disk.mount = fd_closer{};
    fs::remove(disk.image, ec);
    return false;
  }
  // Recorded first: should the move fail, the image stays and attach
  // mounts it anew once this filesystem is gone (wait_released).
  write_loop_record(dir, disk.loop_minor);
  if (auto st = attach_mount(disk.mount.get(), mnt, "a disk made ahead"); !st) {
    spdlog::warn("{}", st.error().message);
    return false;
  }
  return true;
}

result<std::string> sandbox_disks::blank_image(const disk_limits& limits) {
  // "v2": no reserved GDT blocks (older blanks had 4 MB of them to copy).
  auto path = cache_dir_ + "/blank-v2-" + std::to_string(limits.bytes >> 20) + "m-"
              + std::to_string(limits.inodes) + "i.ext4";
  std::lock_guard<std::mutex> guard{mtx_};
  std::error_code ec;
  if (fs::exists(path, ec))
    return path;
  fs::create_directories(cache_dir_, ec);
  auto tmp = path + ".making";
  fs::remove(tmp, ec);
  {
    fd_closer f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
    if (f.get() < 0 || ::ftruncate(f.get(), limits.bytes) != 0)
      return internal_error(errno_text("create " + tmp));
  }
  // No reserved blocks (no root-only reserve inside a sandbox); the inode
  // count is the inode limit; lazy init keeps the image sparse, and without
  // resize_inode (a sandbox's disk never grows online) its data is ~240 KB
  // instead of 4 MB of reserved group descriptors: every create copies it.
  auto out = run_command({"mkfs.ext4", "-q", "-F", "-m", "0", "-N", std::to_string(limits.inodes),
                          "-O", "^resize_inode",
                          "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", tmp},
                         std::chrono::seconds(60));
  if (!out || out->exit_code != 0) {
    fs::remove(tmp, ec);
    return internal_error("mkfs.ext4 failed (apt-get install e2fsprogs): "
                          + (out ? out->output : out.error().message));
  }
  fs::rename(tmp, path, ec);
  if (ec)
    return internal_error("cannot keep " + path + ": " + ec.message());
  return path;
}

status sandbox_disks::mount_image(const std::string& dir, const disk_limits& limits,
                                  bool made_ahead, bool& fresh) {
  auto mnt = mount_point(dir);
  auto image = dir + "/disk.img";
  std::error_code ec;
  fs::create_directories(mnt, ec);
  if (ec)
    return internal_error("cannot create " + mnt + ": " + ec.message());
  fresh = false;
  if (is_mount_point(mnt))
    return success(); // mounted already (a restart or a resume)
  fresh = !fs::exists(image, ec);
  if (fresh && made_ahead && place_ready(dir, image, mnt, limits))
    return success();
  if (!fs::exists(image, ec)) { // a placement that failed may have left its image
    auto blank = blank_image(limits);
    if (!blank)
      return blank.error();
    if (auto st = sparse_copy(*blank, image); !st) {
      fs::remove(image, ec);
      return st;
    }
  }
  if (auto st = wait_released(dir, image); !st)
    return st;
  auto loop = attach_loop(image);
  if (!loop)
    return loop.error();
  write_loop_record(dir, loop->minor);
  auto dev_path = "/proc/self/fd/" + std::to_string(loop->dev.get());
  if (::mount(dev_path.c_str(), mnt.c_str(), "ext4", MS_NOSUID | MS_NODEV, disk_options) != 0)
    return internal_error(errno_text("mount the disk on " + mnt));
  return success();
}

status sandbox_disks::attach(const std::string& dir, const disk_limits& limits) {
  bool fresh = false;
  if (auto st = mount_image(dir, limits, true, fresh); !st)
    return st;
  auto mnt = mount_point(dir);
  // Stored with the ids they have inside: only the host may look at it raw.
  if (::chmod(mnt.c_str(), 0700) != 0)
    return internal_error(errno_text("chmod " + mnt));
  std::error_code ec;
  for (auto sub : {"/upper", "/work"}) {
    fs::create_directories(mnt + sub, ec);
    if (ec)
      return internal_error("cannot create " + mnt + sub + ": " + ec.message());
  }
  return success();
}

status sandbox_disks::attach_volume(const std::string& dir, const disk_limits& limits,
                                    unsigned owner) {
  bool fresh = false;
  if (auto st = mount_image(dir, limits, false, fresh); !st)
    return st;
  if (!fresh)
    return success();
  // The filesystem's root is the volume's root as a sandbox sees it.
  auto mnt = mount_point(dir);
  ::rmdir((mnt + "/lost+found").c_str());
  if (::chown(mnt.c_str(), owner, owner) != 0 || ::chmod(mnt.c_str(), 0755) != 0)
    return internal_error(errno_text("hand over " + mnt));
  return success();
}

status sandbox_disks::detach(const std::string& dir, bool keep) {
  auto mnt = mount_point(dir);
  // Everything written reaches the image now, whatever else still holds the
  // filesystem after the unmount below (see wait_released).
  if (keep && is_mount_point(mnt)) {
    fd_closer fd{::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)};
    if (fd.get() >= 0)
      ::syncfs(fd.get());
  }
  if (::umount2(mnt.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL
      && errno != ENOENT)
    return internal_error(errno_text("umount " + mnt));
  return success();
}

result<disk_usage> sandbox_disks::usage(const std::string& dir) const {
  struct statvfs v;
  if (::statvfs(mount_point(dir).c_str(), &v) != 0)
    return internal_error(errno_text("statvfs " + mount_point(dir)));
  disk_usage u;
  u.total_bytes = static_cast<int64_t>(v.f_blocks) * static_cast<int64_t>(v.f_frsize);
  u.used_bytes = static_cast<int64_t>(v.f_blocks - v.f_bfree) * static_cast<int64_t>(v.f_frsize);
  u.used_inodes = static_cast<int64_t>(v.f_files - v.f_ffree);
  return u;
}

} // namespace sandboxd
