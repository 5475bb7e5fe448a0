// One envd request as the data-plane handlers see it, and what they answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"
#include "http/envd.hpp"
#include "runtime/containers.hpp"

namespace sandboxd::http {

using json = nlohmann::json;

/// A response body produced while it is sent (process output, file bytes).
class body_source {
public:
  virtual ~body_source() = default;
  /// Fills at most `max` bytes, blocking until some are ready: returns the
  /// count, 0 at the end, -1 to abort the response.
  virtual ssize_t read(char* buf, size_t max) = 0;
};

struct envd_reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::unique_ptr<body_source> stream; // when set, `body` is unused
  std::optional<uint64_t> stream_size; // Content-Length when known
  /// A 101 answer: once sent, the client's socket and the bytes it sent
  /// past its request head are handed to this, which returns when done.
  std::function<void(int client, const std::string& from_client)> upgraded;

  static envd_reply json_body(int status, const json& j);
  static envd_reply empty(int status);
  /// envd's REST errors: {"code": <status>, "message"}.
  static envd_reply rest_error(const failure& f);
  /// Connect unary errors: {"code": "not_found", "message"}.
  static envd_reply connect_error(const failure& f);
  /// Connect streaming errors: HTTP 200, the error in the end-of-stream
  /// message (streaming responses are always 200 in Connect).
  static envd_reply stream_error(const failure& f);
};

struct envd_call {
  envd_context* ctx = nullptr;
  std::string method;
  std::string path;
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers; // lowercase names
  std::string body;
  std::string sandbox_id;
  std::string user;        // from Basic auth, else the sandbox's default
  std::string workdir;     // where processes start unasked; empty: the user's home
  std::string socket;      // the sandbox agent's socket, once resolved
  int client_fd = -1;      // to notice a client that went away mid-stream

  std::string header(const std::string& lower) const {
    auto i = headers.find(lower);
    return i == headers.end() ? std::string{} : i->second;
  }
  std::optional<std::string> param(const std::string& name) const {
    auto i = query.find(name);
    if (i == query.end())
      return std::nullopt;
    return i->second;
  }
  /// Connect-Timeout-Ms, when the client set one.
  std::optional<std::chrono::milliseconds> deadline() const;
  /// Keepalive-Ping-Interval (seconds), default 50 s.
  std::chrono::milliseconds keepalive() const;
};

/// The sandbox's record, from its actor.
result<sandbox_record> sandbox_record_of(envd_context& ctx, const std::string& sandbox_id);

/// Asks the sandbox's actor for its agent socket (running sandboxes only).
result<std::string> resolve_agent(envd_context& ctx, const std::string& sandbox_id);

/// One agent request through the sandbox's actor: its terminal frame.
result<json> agent_call(const envd_call& call, const json& request);

/// The ids of every live sandbox (signed URLs name no sandbox).
std::vector<std::string> live_sandboxes(envd_context& ctx);

/// Reads the sandbox's cgroup and overlay.
result<container_sample> sandbox_sample(envd_context& ctx, const std::string& sandbox_id);

/// The server-streaming RPCs (Start, Connect, WatchDir).
bool is_stream_rpc(const std::string& path);

// Handlers, by file: envd_process.cpp, envd_filesystem.cpp, envd_files.cpp.
envd_reply process_rpc(envd_call& call, const std::string& method);
envd_reply filesystem_rpc(envd_call& call, const std::string& method);
envd_reply files_download(envd_call& call);

/// A streaming upload (POST /files): bytes in as they arrive, one reply.
class upload_sink {
public:
  virtual ~upload_sink() = default;
  virtual status feed(const char* data, size_t size) = 0;
  virtual envd_reply finish() = 0;
};

/// Sets up an upload for `call` (headers and query known, body not yet).
result<std::unique_ptr<upload_sink>> files_upload(envd_call& call, void* mhd_connection);

/// Whether `path` is the template files route (/template-files/...): no
/// sandbox's, authorized by its URL's signature alone.
bool is_template_files_path(const std::string& path);

/// Checks the head of a template files upload (PUT /template-files/
/// <templateID>/<hash>?org=&expires=&signature=) and opens the file its
/// body streams into: 400 malformed, 403 signature missing, wrong or
/// expired, 413 announced larger than max_template_file_bytes.
result<std::unique_ptr<upload_sink>> template_file_upload(envd_call& call);

/// Whether `path` is the volume-content API (/volumecontent/...): no
/// sandbox's, authorized by the volume's token alone (envd_volume_content.cpp).
bool is_volume_content_path(const std::string& path);

/// Checks the head of a volume-content request (route, method, token,
/// parameters), mounts the volume and returns what takes the body and
/// answers. Its failures are answered as volume_content_error.
result<std::unique_ptr<upload_sink>> volume_content_request(envd_call& call);

/// The volume-content API's errors: {"code": "<status>", "message"}.
envd_reply volume_content_error(const failure& f);

/// Whether `path` is the web console's terminal (envd_terminal.cpp): its
/// sandbox named by `sandboxID`, authorized by a ticket, not a token.
bool is_terminal_path(const std::string& path);

/// The terminal's ticket checked against its sandbox: its expiry (unix
/// seconds), or 401 when missing, wrong (another sandbox's, altered) or
/// expired.
result<int64_t> check_terminal_ticket(const envd_call& call);

/// GET /terminal: 101 and a shell on a PTY over a WebSocket, or 400/405.
envd_reply terminal_request(envd_call& call);

/// The E2B SDK's signature of a /files URL: "v1_" + unpadded base64 of
/// SHA-256 over "path:operation:username:token[:expiration]".
std::string files_signature(const std::string& path, const std::string& operation,
                            const std::string& username, const std::string& token,
                            const std::string& expiration);

/// What a signed URL's `signature` is for `operation` ("read"/"write")
/// and the sandbox whose envd token is `token`.
enum class signature_verdict { valid, expired, invalid, bad_expiration };
signature_verdict judge_signature(const envd_call& call, const std::string& operation,
                                  const std::string& token);

/// judge_signature as the failure envd answers (401 with its words).
status check_signature(const envd_call& call, const std::string& operation,
                       const std::string& token);

} // namespace sandboxd::http
