// A sandbox's cgroup v1 freezer (the container's cgroupsPath /sandboxd/<id>),
// written directly: what `crun pause` and `crun resume` do, without starting
// crun for it (~15 ms a call on a small VM).
#pragma once

#include <chrono>
#include <string>

#include "core/result.hpp"

namespace sandboxd {

/// Whether sandbox `id` has a v1 freezer cgroup (its container exists, and
/// the host mounts the v1 freezer).
bool has_freezer(const std::string& id);

/// Freezes every task of the sandbox and answers once the kernel reports the
/// cgroup FROZEN (a write of FROZEN returns while tasks may still be
/// FREEZING). Not frozen within `within`: thawed again, and a failure.
status freeze(const std::string& id, std::chrono::milliseconds within);

/// Whether the sandbox is frozen or freezing (paused, for crun).
bool is_frozen(const std::string& id);

/// Lets the sandbox's tasks run again.
status thaw(const std::string& id);

} // namespace sandboxd
