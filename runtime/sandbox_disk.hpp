// Each sandbox's writable layer lives on a filesystem of its own: an ext4
// image of the sandbox's disk size and inode count, loop-mounted nosuid,nodev
// at <dir>/disk. Writes past it fail inside with ENOSPC and never touch the
// host's free space; usage comes from the filesystem's counters (statvfs),
// never from walking a tree the sandbox built.
//
// Why not project quotas: this kernel has neither CONFIG_XFS_QUOTA nor the
// quota format ext4 needs (QFMT_V2), and ext4 quotas let CAP_SYS_RESOURCE
// (overlayfs writes with the mounter's credentials) past the hard limit.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "core/result.hpp"

namespace sandboxd {

struct disk_limits {
  int64_t bytes = 10240ll << 20;
  int64_t inodes = 262144;
};

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

  /// Makes <dir>/disk.img (unless it exists: a cold resume keeps the files)
  /// and mounts it at <dir>/disk unless mounted already; 503 while the
  /// filesystem of its last mount is still alive elsewhere (waits up to 5 s).
  status attach(const std::string& dir, const disk_limits& limits);
  /// Unmounts <dir>/disk (the loop device goes with it). Idempotent. With
  /// `keep`, first writes everything to the image (it will be mounted again).
  status detach(const std::string& dir, bool keep);
  /// The mounted filesystem's counters.
  result<disk_usage> usage(const std::string& dir) const;

  static std::string mount_point(const std::string& dir) { return dir + "/disk"; }

private:
  result<std::string> blank_image(const disk_limits& limits);

  std::string cache_dir_;
  std::mutex mtx_; // blank images are made once
};

} // namespace sandboxd
