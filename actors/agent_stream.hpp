// An agent stream actor: owns one streaming connection to a sandbox's agent
// (a process's output, a directory watch) and relays its frames to a
// subscriber. Spawned and monitored by the sandbox actor.
#pragma once

#include <string>

#include "actors/interfaces.hpp"

namespace sandboxd {

/// Opens the agent stream for `request` on `socket` and sends each frame to
/// `sink` as (atom::frame, json text), the last one terminal ("result",
/// "end" or "error"; errors carry "status"). At most `window` frames are in
/// flight: the sink returns credit with (atom::ack, n). Ends with the
/// agent's stream or when `sink` goes away; a process keeps running in the
/// sandbox either way.
caf::actor spawn_agent_stream(caf::actor_system& sys, std::string socket,
                              std::string request, caf::actor sink,
                              uint32_t window = 64);

} // namespace sandboxd
