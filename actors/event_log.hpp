// The event log writer: the one place that appends to the log.
#pragma once

#include <chrono>
#include <memory>

#include "actors/interfaces.hpp"

namespace sandboxd {

class store;

/// How long events are kept (0: forever) and how often to compact.
struct retention_policy {
  std::chrono::milliseconds keep{7 * 24 * 3600 * 1000LL};
  std::chrono::milliseconds every{3600 * 1000};
};

/// Spawns the writer (detached: a synced write blocks its thread only).
/// After each append it wakes `webhooks`, which tail the log themselves.
event_log_actor spawn_event_log(caf::actor_system& sys, std::shared_ptr<store> db,
                                webhook_dispatcher_actor webhooks,
                                retention_policy retention = {});

} // namespace sandboxd
