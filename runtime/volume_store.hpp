// The volumes' filesystems on this host. A volume is an ext4 image of its own
// size, `<data>/volumes/<id>/disk.img`, loop-mounted nosuid,nodev at
// `<data>/volumes/<id>/disk` on its first use (a sandbox that mounts it, or a
// volume-content request) and kept mounted until it is removed or the server
// stops: two sandboxes mounting one volume share that one filesystem, as a
// shared directory. A stop leaves them mounted (running sandboxes keep
// them; the next start takes them up); `sandboxd cleanup` unmounts them.
// Its files are stored with the ids they have inside a
// sandbox (its root directory is `user`'s, 1000:1000); each sandbox sees it
// through an idmapped mount into its own id range. `<data>/volumes` is 0700:
// no host user but root reaches the raw files (a setuid file made inside
// is a root-owned setuid file here).
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include "core/result.hpp"
#include "core/volume.hpp"
#include "runtime/sandbox_disk.hpp"

namespace sandboxd {

class volume_store {
public:
  /// `data_dir`: the server's; `cache_dir`: where blank images are kept.
  volume_store(std::string data_dir, std::string cache_dir);
  /// Syncs the volumes this process mounted, leaving them mounted.
  ~volume_store();
  volume_store(const volume_store&) = delete;
  volume_store& operator=(const volume_store&) = delete;

  /// The host path of the volume's mounted filesystem root, making its
  /// image on first use (404 once removed). Blocking (mkfs, a loop device, a mount): run it on
  /// a worker. Thread-safe.
  result<std::string> mount(const volume& v);
  /// Unmounts the volume and removes its image. Idempotent.
  status remove(const std::string& volume_id);
  /// Unmounts every volume mounted under `data_dir` (sandboxd cleanup,
  /// once no server and no sandbox of it is left).
  static void unmount_all(const std::string& data_dir);

private:
  std::string dir(const std::string& volume_id) const;
  std::string data_dir_;
  sandbox_disks disks_;
  std::mutex mtx_;
  std::set<std::string> mounted_;
  // Removed while this process ran: a request that looked the volume up
  // just before must not make its image again.
  std::set<std::string> removed_;
};

} // namespace sandboxd
