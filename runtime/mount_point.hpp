// Whether a path is where a filesystem is mounted.
#pragma once

#include <string>

namespace sandboxd {

/// True when `path` (never followed if a link) sits on another device than
/// its parent: something is mounted there.
bool is_mount_point(const std::string& path);

} // namespace sandboxd
