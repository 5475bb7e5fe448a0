// The streaming `watch` op: inotify events for a directory, sent as frames
// until the client disconnects or the directory is deleted.
#pragma once

#include <nlohmann/json.hpp>

namespace sandboxd::agent {

using json = nlohmann::json;

/// watch{path,recursive,keepalive_ms} -> start, fs{name,event}*, keepalive*, end
/// (end only when the watched directory itself is deleted).
void handle_watch(int fd, const json& req);

}  // namespace sandboxd::agent
