// Values the agent was told are secret (exec's `secret_env`, e.g. an LLM
// key): they are never echoed back. Every process's output is redacted
// before it leaves the agent, live or from the re-attach backlog, so the
// host never sees them in logs, API responses or streams.
#pragma once

#include <string>

namespace sandboxd::agent {

/// Remembers `value` as secret for the agent's lifetime (short values are
/// ignored: redacting them would mangle ordinary output).
void add_secret(const std::string& value);

/// `data` with every known secret replaced by "[redacted]". A secret split
/// across two reads of a pipe is not caught; one write of it is.
std::string redact(std::string data);

}  // namespace sandboxd::agent
