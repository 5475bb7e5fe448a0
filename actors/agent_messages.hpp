// The payloads of the sandbox actor's agent messages (agent, exec, relay)
// and of its agent streams (actors/interfaces.hpp declares the messages).
// The in-sandbox agent speaks JSON frames (runtime/agent_protocol.hpp): a
// message that must carry one of them verbatim holds it as an agent_frame;
// where callers need only a few values (a process's outcome), they are
// fields.
#pragma once

#include <cstdint>
#include <string>

#include "core/inspect.hpp"
#include "core/result.hpp"

namespace sandboxd {

/// One frame of the agent protocol (runtime/agent_protocol.hpp) as its JSON
/// text, verbatim: a request frame we built, or an answer frame of the agent,
/// which code in the sandbox controls. An answer reaches a message only after
/// agent_client checked it within the protocol's bounds (agent_answers.hpp);
/// whoever reads the text parses it without throwing, as any frame.
struct agent_frame {
  std::string text;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, agent_frame& x) {
  return f(caf::meta::type_name("agent_frame"), x.text);
}

/// How an agent stream ends when it does not end with its terminal frame.
struct agent_stream_error {
  failure why;       // the agent's error (its status ours to derive), or why the stream broke off
  bool lost = false; // the agent went away between two frames (the sandbox did):
                     // the client's connection is cut, as envd's would be
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, agent_stream_error& x) {
  return f(caf::meta::type_name("agent_stream_error"), x.why, x.lost);
}

/// A process run to its end in the sandbox (sandbox_actor's exec). Each
/// stream keeps its first MiB (agent::kRunOutputLimit) as text: bytes that
/// are not UTF-8 are replaced by U+FFFD.
struct exec_outcome {
  int64_t pid = 0;
  std::string stdout_text;
  std::string stderr_text;
  bool stdout_truncated = false; // the process printed more than was kept
  bool stderr_truncated = false;
  int32_t exit_code = -1;        // -1 when a signal ended it
  bool timed_out = false;        // the agent killed it at its deadline
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, exec_outcome& x) {
  return f(caf::meta::type_name("exec_outcome"), x.pid, x.stdout_text, x.stderr_text,
           x.stdout_truncated, x.stderr_truncated, x.exit_code, x.timed_out);
}

} // namespace sandboxd
