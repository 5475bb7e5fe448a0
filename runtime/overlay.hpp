// A sandbox's root as an overlay whose layers are handed over as open,
// detached trees (Linux 6.13+): the layers then take no place in the host's
// mount table. That table matters: every container start copies it into a
// new mount namespace, so each mount a sandbox leaves there slows every
// later start (measured: +10 ms per `unshare -m` at 2,000 mounts).
#pragma once

#include <string>
#include <vector>

#include "core/result.hpp"

namespace sandboxd {

/// Whether the kernel took layers as fds so far (true until one refuses).
bool overlay_takes_fds();

/// An overlay of `lowers` (read-only trees, topmost first) over `upper`,
/// with `work` beside it (directories on one filesystem), mounted nowhere
/// yet: its fd, for move_mount. The overlay acts with the caller's
/// credentials: call it as the range's root for an idmapped sandbox. Fails
/// with 501 when the kernel does not take layers as fds, and
/// overlay_takes_fds() is false from then on.
result<int> make_overlay(const std::vector<int>& lowers, int upper, int work);

} // namespace sandboxd
