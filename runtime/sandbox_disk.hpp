// Each sandbox's writable layer lives on a filesystem of its own: an ext4
// image of the sandbox's disk size and inode count, loop-mounted nosuid,nodev
// at <dir>/disk. Writes past it fail inside with ENOSPC and never touch the
// host's free space; usage comes from the filesystem's counters (statvfs),
// never from walking a tree the sandbox built.
//
// Why not project quotas: this kernel has neither CONFIG_XFS_QUOTA nor the
// quota format ext4 needs (QFMT_V2), and ext4 quotas let CAP_SYS_RESOURCE
// (overlayfs writes with the mounter's credentials) past the hard limit.
//
// Making a disk (a 4 MB copy, a loop device, an ext4 mount) costs a create
// 10-30 ms, more as page cache and loop devices accumulate: a few disks of the
// usual size are made ahead, in the background, mounted detached (in no mount
// table, so they slow no container start) and moved into place by attach.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "core/fd_closer.hpp"
#include "core/inspect.hpp"
#include "core/result.hpp"

namespace sandboxd {

struct disk_limits {
  int64_t bytes = 10240ll << 20;
  int64_t inodes = 262144;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, disk_limits& x) {
  return f(caf::meta::type_name("disk_limits"), x.bytes, x.inodes);
}

struct disk_usage {
  int64_t used_bytes = 0;
  int64_t total_bytes = 0;
  int64_t used_inodes = 0;
};

class sandbox_disks {
public:
  /// `cache_dir` keeps one blank image per (size, inodes), made once by
  /// mkfs.ext4; a sandbox's image is a sparse copy of it.
  explicit sandbox_disks(std::string cache_dir);
  /// Unmounts the disks made ahead (their loop devices go) and removes them.
  ~sandbox_disks();
  sandbox_disks(const sandbox_disks&) = delete;
  sandbox_disks& operator=(const sandbox_disks&) = delete;

  /// Keeps `count` disks of `limits` made ahead (0: none). Called once, at
  /// start: removes what a previous process left (its disks died with it).
  void keep_ready(size_t count, const disk_limits& limits);
  /// Whether fewer disks are ready than kept (make_ready is due).
  bool short_of_ready() const;
  /// Makes one disk ahead: blocking (a copy, a loop device, a mount), for
  /// the executor's background lane.
  status make_ready();
  /// Disks ready now: for operators and tests.
  size_t ready() const;

  /// Makes <dir>/disk.img (unless it exists: a cold resume keeps the files)
  /// and mounts it at <dir>/disk unless mounted already; 503 while the
  /// filesystem of its last mount is still alive elsewhere (waits up to 5 s).
  status attach(const std::string& dir, const disk_limits& limits);
  /// A volume's filesystem (runtime/volume_store.hpp): as attach, never a
  /// disk made ahead, no overlay directories; made fresh, its root belongs
  /// to `owner` (uid and gid as stored), mode 0755, without lost+found.
  status attach_volume(const std::string& dir, const disk_limits& limits, unsigned owner);
  /// Unmounts <dir>/disk (the loop device goes with it). Idempotent. With
  /// `keep`, first writes everything to the image (it will be mounted again).
  status detach(const std::string& dir, bool keep);
  /// The mounted filesystem's counters.
  result<disk_usage> usage(const std::string& dir) const;

  static std::string mount_point(const std::string& dir) { return dir + "/disk"; }

private:
  /// A disk made ahead: its image (under ready/) and its filesystem,
  /// mounted nowhere yet.
  struct ready_disk {
    std::string image;
    int loop_minor = -1;
    fd_closer mount;
  };

  result<std::string> blank_image(const disk_limits& limits);
  /// <dir>/disk.img (made from a blank unless it exists; a disk made ahead
  /// when `made_ahead`) mounted at <dir>/disk unless it is already.
  /// `fresh`: the image was made now.
  status mount_image(const std::string& dir, const disk_limits& limits, bool made_ahead,
                     bool& fresh);
  /// Puts a disk made ahead at <dir>: its image renamed to `image`, its
  /// filesystem moved onto `mnt`. False when none fits `limits` or placing
  /// one failed (the caller makes one then).
  bool place_ready(const std::string& dir, const std::string& image, const std::string& mnt,
                   const disk_limits& limits);
  std::string ready_dir() const { return cache_dir_ + "/ready"; }

  std::string cache_dir_;
  std::mutex mtx_; // blank images are made once
  mutable std::mutex ready_mtx_;
  std::deque<ready_disk> ready_;
  size_t ready_wanted_ = 0;
  size_t ready_making_ = 0;
  disk_limits ready_limits_;
  uint64_t ready_serial_ = 0;
};

} // namespace sandboxd
