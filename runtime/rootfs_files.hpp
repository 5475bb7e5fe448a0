// Files the host reads and writes inside a sandbox's root filesystem before
// or while it runs. The sandbox may have changed anything in it (a symlink
// where a directory was), so every path is resolved inside the root
// (openat2 RESOLVE_IN_ROOT, no magic links, no other filesystem) and the
// last component is never followed.
#pragma once

#include <string>

#include "core/result.hpp"

namespace sandboxd {

/// Replaces <rootfs>/<dir>/<name> with `text` (mode 0644): written to a
/// temporary file there, then renamed over whatever `name` was.
status write_in_rootfs(const std::string& rootfs, const std::string& dir, const std::string& name,
                       const std::string& text);

/// The regular file <rootfs>/<path> (symlinks resolved inside the root),
/// at most `max` bytes; 404 if there is none, 413 if it is larger.
result<std::string> read_in_rootfs(const std::string& rootfs, const std::string& path, size_t max);

} // namespace sandboxd
