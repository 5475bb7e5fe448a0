// The event log writer: the one place that appends to the log.
#pragma once

#include <memory>

#include "actors/interfaces.hpp"

namespace sandboxd {

class store;

/// Spawns the writer (detached: a synced write blocks its thread only).
/// After each append it wakes `webhooks`, which tail the log themselves.
event_log_actor spawn_event_log(caf::actor_system& sys, std::shared_ptr<store> db,
                                webhook_dispatcher_actor webhooks);

} // namespace sandboxd
