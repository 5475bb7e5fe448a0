// Sending frames to a connected client with a bounded wait, so that a client
// that stops reading cannot pin a connection thread forever.
#pragma once

#include <chrono>
#include <string>

#include "runtime/agent_protocol.hpp"

namespace sandboxd::agent {

inline constexpr auto kSendTimeout = std::chrono::seconds(60);

inline bool send_frame(int fd, const json& frame) {
  return write_frame(fd, frame, clock::now() + kSendTimeout) == io_status::ok;
}

inline bool send_encoded(int fd, const std::string& bytes) {
  return write_all(fd, bytes.data(), bytes.size(), clock::now() + kSendTimeout) == io_status::ok;
}

}  // namespace sandboxd::agent
