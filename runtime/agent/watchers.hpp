// Polling directory watchers: created by one request, drained by later ones.
// Kept per agent process (they die with the sandbox); each owns an inotify
// watch and a thread buffering its events (at most kMaxWatcherEvents, the
// oldest are dropped first).
#pragma once

#include <cstddef>

#include <nlohmann/json.hpp>

namespace sandboxd::agent {

using json = nlohmann::json;

inline constexpr size_t kMaxWatcherEvents = 10000;

/// watcher_create{path,recursive} -> result{watcher_id}
void handle_watcher_create(int fd, const json& req);
/// watcher_events{watcher_id} -> result{events:[{name,event}]}, clearing the buffer
void handle_watcher_events(int fd, const json& req);
/// watcher_remove{watcher_id} -> result
void handle_watcher_remove(int fd, const json& req);

}  // namespace sandboxd::agent
