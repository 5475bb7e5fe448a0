// What the host accepts from a sandbox's agent. The agent runs inside the
// sandbox, so anything it sends may be hostile: every frame's shape is
// checked once, where frames arrive (agent_client), against what the
// request's op can answer (agent_protocol.hpp). Code that renders answers
// can then read fields without meeting a wrong type, and a wrong shape is
// the sandbox's failure (502 with the reason), never a 500 or a default.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace sandboxd::agent {

/// ok, or why `frame` is not an acceptable answer to a request whose op is
/// `op` (a frame type the op never sends, a missing or mistyped field).
status check_answer(const std::string& op, const nlohmann::json& frame);

/// The failure for an unacceptable answer: 502 naming the reason.
failure malformed_answer(const std::string& why);

}  // namespace sandboxd::agent
