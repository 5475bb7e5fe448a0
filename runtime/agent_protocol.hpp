// Wire format shared by the in-sandbox agent and the host-side client.
//
// A connection carries frames: [u32 big-endian length][UTF-8 JSON object].
// The client sends one request frame (plus, for write_stream, data frames);
// the agent answers with frames ending in exactly one terminal frame whose
// "type" is "result", "end" or "error" ({"type":"error","code":C,"message":M}).
//
// Ops (requests may carry "user", default "user"; relative paths resolve
// against that user's home):
//   ping                       -> result{pid, version}
//   exec{cmd,args,env,secret_env,cwd,timeout_ms,stdin,tag,pty{cols,rows}}
//                              (secret_env: set for the process, never listed, and its
//                              values are redacted from every process's output)
//                              -> start{pid}, stdout|stderr|pty{data:b64}*, end{exit_code,
//                                 signal,exited,status,timed_out}  (exit_code -1 when signalled)
//   connect{pid|tag}           -> like exec: start, undelivered backlog, live output, end
//   list_processes             -> result{processes:[{pid,tag,cmd,args,env,cwd,pty}]}
//   input{pid,data} | close_stdin{pid} | signal{pid,signal} | resize{pid,cols,rows} -> result
//   env                        -> result{env}
//   stat{path} -> result{entry}; list{path,depth} -> result{entries}
//   read{path,max_bytes}       -> result{size,data}
//   read_stream{path}          -> start{size}, chunk{data}*, result{size}
//   write{path,data}           -> result{entry}
//   write_stream{path}; client then sends {data}* and {end:true} -> result{entry}
//   mkdir{path} -> result{entry,created}; move{from,to} -> result{entry}
//   remove{path,missing_ok} -> result (not_found for a missing path unless missing_ok)
//   watch{path,recursive,keepalive_ms}
//                              -> start, fs{name,event}*, keepalive*, end (only once the directory
//                                 itself is deleted; otherwise runs until the client disconnects).
//                                 name is relative to the directory ("." = itself); event is
//                                 create|write|remove|rename|chmod
//   watcher_create{path,recursive} -> result{watcher_id}
//   watcher_events{watcher_id} -> result{events:[{name,event}]} (drains; at most 10000 kept)
//   watcher_remove{watcher_id} -> result
//   tcp{port}                  -> result, then raw bytes both ways with 127.0.0.1:port (or
//                                 [::1]:port) inside; error not_found when nothing listens
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace sandboxd::agent {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;
/// Absolute deadline for blocking I/O; nullopt waits forever.
using deadline = std::optional<clock::time_point>;

// Both ends parse every frame within these limits: the other end may be
// hostile (code in the sandbox can stand in for the agent). The largest
// legitimate frames are upload pieces (4 MiB raw, base64) and a `read` of
// at most 8 MiB; nothing the protocol carries nests deeper than 5 levels.
inline constexpr uint32_t kMaxFrameBytes = 16u * 1024 * 1024;
inline constexpr int kMaxFrameDepth = 16;
inline constexpr const char* kAgentVersion = "0.1.0";
inline constexpr const char* kDefaultSocketPath = "/run/sandboxd/agent.sock";

// Error codes carried in {"type":"error","code":...}.
namespace code {
inline constexpr const char* invalid_argument = "invalid_argument";
inline constexpr const char* not_found = "not_found";
inline constexpr const char* already_exists = "already_exists";
inline constexpr const char* permission_denied = "permission_denied";
inline constexpr const char* too_large = "too_large";
inline constexpr const char* failed_precondition = "failed_precondition";
inline constexpr const char* internal = "internal";
}  // namespace code

/// HTTP-like status for an agent error code: "internal" and unknown codes
/// are the sandbox's failure, 502.
int http_status_for_code(const std::string& code);

json error_frame(const std::string& code, const std::string& message);

/// True for "result", "end" and "error" frames.
bool is_terminal(const json& frame);

/// Serialises a frame: length prefix followed by compact JSON.
std::string encode_frame(const json& payload);

enum class io_status { ok, eof, timeout, error, too_large, malformed };
const char* to_string(io_status s);

/// Writes all bytes, honouring the deadline (works on blocking and
/// non-blocking sockets; uses MSG_NOSIGNAL).
io_status write_all(int fd, const char* data, size_t size, deadline dl = std::nullopt);
io_status write_frame(int fd, const json& payload, deadline dl = std::nullopt);

/// Reads one frame. eof means the peer closed cleanly before the first byte
/// of a frame; a close in the middle of a frame is an error. Lengths above
/// kMaxFrameBytes give too_large, payloads that are not a JSON object (or
/// nest deeper than kMaxFrameDepth) give malformed. `detail` (optional)
/// receives a human-readable reason.
io_status read_frame(int fd, json& out, deadline dl = std::nullopt, std::string* detail = nullptr);

/// Milliseconds left until the deadline for poll(): -1 for none, >= 0 otherwise.
int poll_timeout_ms(const deadline& dl);

}  // namespace sandboxd::agent
