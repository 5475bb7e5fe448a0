// The one-shot agents an e2a sandbox can run, described declaratively in
// ops/agents.json: the command line run inside the sandbox, the variable
// that carries the LLM key, how models are validated, and which template a
// sandbox with that agent uses. Adding an agent is a config change.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace sandboxd {

struct agent_spec {
  std::string name;
  // Run with `sh -c` as the sandbox user in /workspace, with TASK, MODEL and
  // `key_env` set. Empty: the agent is known but not installed here (501).
  std::string command;
  std::string unavailable_reason; // why `command` is empty
  std::string key_env;            // e.g. ANTHROPIC_API_KEY
  std::vector<std::string> model_prefixes; // any of them; empty: any model
  bool model_required = false;
  // e2a template name → catalogue template for sandboxes with this agent
  // (templates not listed keep their usual mapping).
  std::map<std::string, std::string> templates;
  int cancel_grace_s = 10;        // SIGTERM, then SIGKILL this much later
};

class agent_catalog {
public:
  /// Reads the file; a missing or malformed file is an error naming it.
  static result<agent_catalog> load(const std::string& file);

  /// The agent, or 501 "unknown agent: NAME".
  result<agent_spec> find(const std::string& name) const;

  /// 400 when `model` doesn't fit the agent's rules (missing when required,
  /// or without one of its prefixes).
  static status check_model(const agent_spec& a, const std::string& model);

  /// Every environment variable some agent takes its key from: reserved.
  std::vector<std::string> key_envs() const;

private:
  std::map<std::string, agent_spec> agents_;
};

} // namespace sandboxd
