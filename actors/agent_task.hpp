// The agent task: follows a sandbox's one-shot agent process (e2a's
// `agent`), turning its output into the sandbox's log lines and telling the
// sandbox actor when the process starts and ends. Spawned by the sandbox
// actor; detached, so reading the agent socket blocks nobody else.
#pragma once

#include <memory>
#include <string>

#include "actors/interfaces.hpp"

namespace sandboxd {

class store;

/// Sends `request` (an exec, or a connect{pid} to re-attach after a
/// restart) to the agent at `socket`. Reports (atom::agent_up, pid) and then
/// (atom::agent_end, exit_code, lost) to `parent` unless `report` is false
/// (a template's start command: output only); stops when `parent` does.
void spawn_agent_task(caf::actor_system& sys, std::string socket, std::string request,
                      std::shared_ptr<store> db, std::string sandbox_id, sandbox_actor parent,
                      bool report = true);

} // namespace sandboxd
