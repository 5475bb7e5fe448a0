// An agent stream actor: owns one streaming connection to a sandbox's agent
// (a process's output, a directory watch) and relays its frames to a
// subscriber. Spawned and monitored by the sandbox actor.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "actors/interfaces.hpp"

namespace sandboxd {

class store;

/// Opens the agent stream for `request` on `socket` and sends each frame to
/// `sink` (atom::frame), the last one terminal ("result" or "end"), or ends
/// it with (atom::broken, why) for an error. At most `window` frames are in
/// flight: the sink returns credit with (atom::ack, n). Ends with the
/// agent's stream or when `sink` goes away; a process keeps running in the
/// sandbox either way.
/// With `log_to`, the output of a process stream (exec, connect) also goes
/// to that sandbox's log, up to 1 MiB per stream and process.
struct stream_log {
  std::shared_ptr<store> db;
  std::string sandbox_id;
};
agent_stream_actor spawn_agent_stream(caf::actor_system& sys, std::string socket,
                                      agent_frame request, agent_sink_actor sink,
                                      std::optional<stream_log> log_to = std::nullopt,
                                      uint32_t window = 64);

} // namespace sandboxd
