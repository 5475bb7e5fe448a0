// Host-side client for the in-sandbox agent (see agent_protocol.hpp).
// All calls are blocking and meant for worker threads; each opens its own
// unix-socket connection. Timeouts are overall deadlines for the call.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace sandboxd::agent {

using json = nlohmann::json;

/// One request; collects frames until the terminal one. Returns the terminal
/// "result"/"end" frame, or a failure (agent error codes mapped to HTTP-like
/// statuses; unreachable agent, EOF before a terminal frame or a frame that
/// is too large, too deep or of the wrong shape (agent_answers.hpp) -> 502;
/// deadline exceeded -> 504). Every frame passed on has been checked.
result<json> call(const std::string& socket_path, const json& request,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Streaming request (exec/connect/read_stream...). on_frame sees every frame
/// including the terminal one; returning false closes the connection early
/// (processes keep running in the agent) and the call returns success.
/// A terminal error frame is passed to on_frame and also returned as failure.
status stream(const std::string& socket_path, const json& request,
              const std::function<bool(const json&)>& on_frame, std::chrono::milliseconds timeout);

/// Output a run() keeps per stream (stdout, stderr); the rest is read and
/// dropped, so the process is never blocked on its pipe and still reports
/// its exit. Whatever a sandbox prints, a run holds at most this much.
inline constexpr size_t kRunOutputLimit = 1u << 20;

struct exec_outcome {
  int pid = 0;
  std::string stdout_data, stderr_data;  // raw bytes; pty output is collected into stdout_data
  bool stdout_truncated = false, stderr_truncated = false;  // more was printed than kept
  int exit_code = -1;
  bool exited = false;
  bool timed_out = false;
  std::string status;
};

/// Runs an exec request (op is forced to "exec") to completion, keeping at
/// most `max_output` bytes of each stream. An answer that is not a whole
/// run (no end frame, a malformed frame) is a failure, never an exit code.
result<exec_outcome> run(const std::string& socket_path, const json& exec_request,
                         std::chrono::milliseconds timeout, size_t max_output = kRunOutputLimit);

/// write_stream upload: next_chunk() is called repeatedly for raw bytes
/// (any size; large chunks are split); nullopt ends the upload. Returns the
/// agent's result frame ({"type":"result","entry":...}).
result<json> write_stream(const std::string& socket_path, const json& request,
                          const std::function<std::optional<std::string>()>& next_chunk,
                          std::chrono::milliseconds timeout);

/// tcp{port}: a (non-blocking) socket that carries raw bytes with the port
/// inside the sandbox; the caller closes it. 404 when nothing listens there.
result<int> open_port(const std::string& socket_path, int port, std::chrono::milliseconds timeout);

/// Succeeds once something inside the sandbox accepts connections on `port`,
/// trying every few milliseconds; 504 when nothing did within `timeout`.
status wait_for_port(const std::string& socket_path, int port, std::chrono::milliseconds timeout);

/// A connection driven frame by frame, for callers that relay frames as they
/// arrive (the envd data plane) or push upload data as it arrives. The
/// request frame is sent by open(); the socket closes with the object.
class connection {
 public:
  static result<std::unique_ptr<connection>> open(const std::string& socket_path, const json& request,
                                                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  enum class next_status { frame, timeout, closed };
  /// Waits at most `timeout` for the next frame. `closed` covers EOF and
  /// broken or malformed frames (`detail` says which).
  next_status next(json& out, std::chrono::milliseconds timeout, std::string* detail = nullptr);
  /// Sends one client frame (write_stream data).
  status send(const json& frame, std::chrono::milliseconds timeout);
  int fd() const { return fd_; }

 private:
  connection(int fd, std::string op) : fd_(fd), op_(std::move(op)) {}
  int fd_;
  std::string op_;  // what the frames answer
};

/// Maps an agent {"type":"error"} frame to a failure.
failure failure_from_error_frame(const json& frame);

}  // namespace sandboxd::agent
