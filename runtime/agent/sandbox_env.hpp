// The environment every process of the sandbox starts from: the agent's own
// (the OCI config's), then what the host set later. A warm sandbox booted
// before anyone asked for it learns its caller's env vars this way when it
// is claimed.
#pragma once

#include <map>
#include <string>

namespace sandboxd::agent {

/// Adds `vars` over the agent's environment for every later process
/// (variables set earlier and not named again stay).
void set_sandbox_env(const std::map<std::string, std::string>& vars);

/// The agent's environment with the host's additions over it.
std::map<std::string, std::string> sandbox_env();

}  // namespace sandboxd::agent
