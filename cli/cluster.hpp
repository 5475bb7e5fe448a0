// What `serve` (the control node) and `worker` share of the cluster set-up.
#pragma once

#include <string>

#include <caf/actor_system_config.hpp>

#include "core/result.hpp"

namespace sandboxd::cli {

/// Loads CAF's middleman with its openssl module, keyed by the cluster
/// secret in `secret_file` (credentials derived into `dir`): peers without
/// the secret fail the TLS handshake. Heartbeats make a cut connection end
/// (and the peer's monitors fire) within a few seconds.
[[nodiscard]] status configure_cluster(caf::actor_system_config& cfg,
                                       const std::string& secret_file, const std::string& dir);

} // namespace sandboxd::cli
