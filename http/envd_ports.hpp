// Sandbox ports reached from outside through the envd listener (E2B's
// getHost): see envd_ports.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "http/envd_call.hpp"

namespace sandboxd::http {

/// The sandbox port a request is for: `E2b-Sandbox-Port: P`, else a Host of
/// `P-<id>.<domain>`; nullopt for envd itself (49983) and every other request.
std::optional<int> target_port(const envd_call& call);

/// Connects to `port` inside the call's (authorized, resolved) sandbox and
/// sends the request head for `target` (path and query as the client sent
/// them). The sink passes the body on as it arrives; its finish() is the
/// sandbox's answer, streamed. On a failure, `refused` is E2B's answer for
/// it (502 "The sandbox is running but port is not open" for a closed port).
result<std::unique_ptr<upload_sink>> open_port_request(envd_call& call, int port,
                                                       const std::string& target,
                                                       envd_reply& refused);

} // namespace sandboxd::http
