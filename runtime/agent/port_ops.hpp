// Ports inside the sandbox, reached from the host through the agent (the
// envd listener's port proxy): works for a server bound to 127.0.0.1 as for
// one on every address, and needs no network between host and sandbox.
#pragma once

#include "runtime/agent_protocol.hpp"

namespace sandboxd::agent {

/// tcp{port} -> result{}, then the connection carries raw bytes both ways
/// between the host and the port, until both sides have closed; error
/// not_found when nothing listens on it.
void handle_tcp(int fd, const json& req);

}  // namespace sandboxd::agent
