// Relays an agent stream to a Connect server stream, one envelope per agent
// frame as soon as it arrives, with keepalives while the agent is quiet, the
// client's deadline (Connect-Timeout-Ms), and an early stop when the client
// goes away. A terminal frame flagged `timed_out` (the agent enforced the
// deadline) ends the stream with deadline_exceeded, as envd does.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "http/envd_call.hpp"
#include "runtime/agent_client.hpp"
#include "runtime/agent_protocol.hpp"

namespace sandboxd::http {

class connect_relay : public body_source {
public:
  /// The Connect message for an agent frame (non-error); nullopt skips it.
  using translate_fn = std::function<std::optional<json>(const json& frame)>;

  struct options {
    translate_fn translate;
    json keepalive_message;                           // sent while quiet
    std::chrono::milliseconds keepalive{50000};
    std::optional<std::chrono::milliseconds> deadline;
    int client_fd = -1;
  };

  connect_relay(std::unique_ptr<agent::connection> conn, options opts);
  ssize_t read(char* buf, size_t max) override;

  /// Opens the agent stream for `request` and wraps it, or fails before any
  /// byte of the response is sent (answered as a unary Connect error).
  static result<std::unique_ptr<connect_relay>> open(const envd_call& call, const json& request,
                                                     options opts);

private:
  void pump();

  std::unique_ptr<agent::connection> conn_;
  options opts_;
  std::string pending_;
  bool finished_ = false;
  bool aborted_ = false;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_sent_;
};

/// A Connect server-stream reply around a relay.
envd_reply stream_reply(std::unique_ptr<connect_relay> relay);

} // namespace sandboxd::http
