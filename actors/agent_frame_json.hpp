// An agent_frame to and from its JSON object, for the two ends of a message
// that carries one (actors/agent_messages.hpp).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "actors/agent_messages.hpp"
#include "core/result.hpp"

namespace sandboxd {

/// The frame of a JSON object (its text).
inline agent_frame to_frame(const nlohmann::json& object) { return {object.dump()}; }

/// The frame's JSON object, or a failure with `status` for text that is not
/// one. Never throws: a frame is read on threads where an exception would
/// end the server.
inline result<nlohmann::json> parse_frame(const agent_frame& frame, int status = 502) {
  auto j = nlohmann::json::parse(frame.text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return failure{status, "malformed agent frame"};
  return j;
}

} // namespace sandboxd
