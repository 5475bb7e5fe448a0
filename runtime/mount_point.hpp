// Whether a path is where a filesystem is mounted.
#pragma once

#include <string>
#include <vector>

#include "core/result.hpp"

namespace sandboxd {

/// True when `path` (never followed if a link) sits on another device than
/// its parent: something is mounted there.
bool is_mount_point(const std::string& path);

/// Mounts the detached mount `fd` (from fsmount or open_tree) at `target`,
/// in this thread's mount namespace. `what` names it in the error.
status attach_mount(int fd, const std::string& target, const std::string& what);

/// The mount points in this thread's mount namespace below `dir`,
/// deepest first (for unmounting in order).
std::vector<std::string> mount_points_under(const std::string& dir);

} // namespace sandboxd
