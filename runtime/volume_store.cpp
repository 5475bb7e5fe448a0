#include "runtime/volume_store.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "core/fd_closer.hpp"
#include "runtime/mount_point.hpp"

namespace fs = std::filesystem;

namespace sandboxd {

namespace {

// `user` inside a sandbox (uid and gid 1000 in every template).
constexpr unsigned volume_owner = 1000;
// One inode per 16 KiB (ext4's default ratio), at most this many.
constexpr int64_t max_volume_inodes = 131072;

std::string volumes_dir(const std::string& data_dir) {
  return data_dir + "/volumes";
}

} // namespace

volume_store::volume_store(std::string data_dir, std::string cache_dir)
  : data_dir_(std::move(data_dir)), disks_(std::move(cache_dir)) {}

volume_store::~volume_store() {
  // Kept mounted: sandboxes keep running across a stop and still use them,
  // and a restart takes the mount up again (a second mount of the image
  // would wait for theirs to go). Synced, so a host crash loses nothing;
  // `sandboxd cleanup` unmounts them.
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& id : mounted_) {
    fd_closer fd{::open(sandbox_disks::mount_point(dir(id)).c_str(),
                        O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)};
    if (fd.get() >= 0)
      ::syncfs(fd.get());
  }
}

std::string volume_store::dir(const std::string& volume_id) const {
  return volumes_dir(data_dir_) + "/" + volume_id;
}

result<std::string> volume_store::mount(const volume& v) {
  if (!valid_volume_id(v.id))
    return internal_error("invalid volume id " + v.id);
  std::lock_guard<std::mutex> guard{mtx_};
  if (removed_.count(v.id))
    return not_found("volume " + v.id + " was deleted");
  std::error_code ec;
  fs::create_directories(volumes_dir(data_dir_), ec);
  // The raw files carry the ids they have inside (a setuid file made there
  // is a host-root one here): no host user but root passes.
  if (ec || ::chmod(volumes_dir(data_dir_).c_str(), 0700) != 0)
    return internal_error("cannot create " + volumes_dir(data_dir_));
  auto bytes = std::max<int64_t>(v.size_mb, 16) << 20;
  disk_limits limits{bytes, std::min<int64_t>(bytes >> 14, max_volume_inodes)};
  if (auto st = disks_.attach_volume(dir(v.id), limits, volume_owner); !st)
    return st.error();
  mounted_.insert(v.id);
  return sandbox_disks::mount_point(dir(v.id));
}

status volume_store::remove(const std::string& volume_id) {
  if (!valid_volume_id(volume_id))
    return internal_error("invalid volume id " + volume_id);
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto st = disks_.detach(dir(volume_id), false); !st)
    return st;
  mounted_.erase(volume_id);
  removed_.insert(volume_id);
  std::error_code ec;
  fs::remove_all(dir(volume_id), ec);
  if (ec)
    return internal_error("cannot remove " + dir(volume_id) + ": " + ec.message());
  return success();
}

void volume_store::unmount_all(const std::string& data_dir) {
  std::error_code ec;
  for (auto& entry : fs::directory_iterator(volumes_dir(data_dir), ec)) {
    auto mnt = sandbox_disks::mount_point(entry.path().string());
    if (is_mount_point(mnt))
      ::umount2(mnt.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  }
}

} // namespace sandboxd
