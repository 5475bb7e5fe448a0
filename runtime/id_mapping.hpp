// Root inside a sandbox is not root outside: every sandbox runs in a user
// namespace of its own whose ids 0..65535 are a host range that no other
// sandbox holds at the same time, on this server or any other on the host.
//
// Files keep the ids they have inside (templates, snapshots, the sandbox's
// own disk). Idmapped mounts show them to the sandbox as its range, so a
// template stays one shared read-only tree and nothing is chowned or copied
// per sandbox; a snapshot of one sandbox opens in another range unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "core/result.hpp"

namespace sandboxd {

/// Ids 0..size-1 inside map to base..base+size-1 on the host.
inline constexpr uint32_t id_range_size = 65536;

struct id_range {
  uint32_t base = 0;
};

/// Hands out ranges. A range is taken when its byte in a lock file shared by
/// every sandboxd on the host carries our open-file-description lock: a
/// server that dies drops its locks with its fd, and one that restarts
/// adopts the ranges its live sandboxes still use.
class id_ranges {
public:
  /// Slot i is the range starting at first_base + i * id_range_size.
  id_ranges(std::string lock_file, uint32_t first_base, uint32_t slots);
  ~id_ranges();
  id_ranges(const id_ranges&) = delete;
  id_ranges& operator=(const id_ranges&) = delete;

  /// A free range for `sandbox`, or 503-like failure when all are taken.
  result<id_range> acquire(const std::string& sandbox);
  /// Takes `r` again for a sandbox found running at start; 409 when another
  /// server took it meanwhile.
  status adopt(const std::string& sandbox, id_range r);
  /// The range `sandbox` holds, if any.
  result<id_range> of(const std::string& sandbox) const;
  void release(const std::string& sandbox);

private:
  status open_lock_file();
  bool lock_slot(uint32_t slot, bool take);

  std::string lock_file_;
  uint32_t first_base_;
  uint32_t slots_;
  mutable std::mutex mtx_;
  int fd_ = -1;
  uint32_t next_ = 0; // where the next search starts: O(1) while ranges are free
  std::map<std::string, uint32_t> held_;
};

/// An fd of a fresh user namespace mapping uids and gids 0..65535 onto `r`.
/// Nothing runs in it: it only describes the mapping for idmapped mounts.
result<int> user_namespace_fd(id_range r);

/// Mounts `source` at `target` (an existing directory) with the ids of the
/// namespace `userns_fd` applied: id k on disk reads as base + k. Never
/// suid or device nodes; `read_only` for layers nothing may write (a
/// template is then safe even from a recursive removal that reaches it).
status idmapped_mount(const std::string& source, const std::string& target, int userns_fd,
                      bool read_only);
/// The same, left detached: an fd of the idmapped tree, in no mount table.
result<int> idmapped_tree(const std::string& source, int userns_fd, bool read_only);

/// Runs `fn` on this thread as the range's root for file-system access
/// (fsuid/fsgid = base) with the host's file capabilities kept: an overlay
/// mounted here writes its idmapped upper layer as root inside, and a file
/// the host writes into a sandbox's tree is owned by root inside.
status as_range_root(id_range r, const std::function<status()>& fn);

} // namespace sandboxd
