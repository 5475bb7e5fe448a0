// The mount namespace containers start from. `crun run` copies the mount
// namespace it starts in, reads all of it (/proc/mounts), makes every mount
// private and detaches the lot at pivot_root: each mount there slows every
// start (at 1,000 live sandboxes the host's table holds 1,000 disks). So a
// container starts from a copy of the host's namespace taken when the server
// started, with no sandbox's mounts in it, where its root (an overlay mounted
// nowhere yet) is the one mount added. The host's namespace never holds a
// sandbox's root at all.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/fd_closer.hpp"
#include "core/result.hpp"

namespace sandboxd {

class launch_namespace {
public:
  /// Takes the copy, without what is mounted below `leave_out` (the
  /// sandboxes of a previous run). On the thread that calls it.
  status make(const std::vector<std::string>& leave_out);
  bool made() const { return launch_.get() >= 0; }

  /// Runs `fn` on this thread inside a fresh copy of the launch namespace
  /// where the detached mount `root` sits at `target`; processes `fn`
  /// spawns stay there. The thread is back in the host's namespace after.
  /// `extra`: more detached mounts (fd, target) put there after the root
  /// (a sandbox's volumes, at paths its bundle binds from).
  status run_with_root(int root, const std::string& target, const std::function<status()>& fn,
                       const std::vector<std::pair<int, std::string>>& extra = {});

private:
  fd_closer host_;
  fd_closer launch_;
};

} // namespace sandboxd
