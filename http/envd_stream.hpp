// Relays an agent stream to a Connect server stream. The stream itself is
// owned by an agent stream actor that the sandbox actor supervises; this
// side holds a mailbox of its own (a scoped actor on the connection's
// thread), turns each frame into an envelope as soon as it arrives, sends
// keepalives while the stream is quiet, enforces the client's deadline
// (Connect-Timeout-Ms), stops when the client goes away, and returns credit
// so a slow client slows the stream instead of filling memory. A terminal
// frame flagged `timed_out` (the agent enforced the deadline) ends the
// stream with deadline_exceeded, as envd does.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "actors/agent_messages.hpp"
#include "http/envd_call.hpp"

namespace caf {
class scoped_actor;
} // namespace caf

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
  };

  /// Asks the sandbox to open the agent stream for `request` and waits for
  /// its first frame; a failure before any byte is sent is returned.
  static result<std::unique_ptr<connect_relay>> open(const envd_call& call, const json& request,
                                                     options opts);
  ~connect_relay() override;
  ssize_t read(char* buf, size_t max) override;
  /// For a caller that serves another input too (the terminal): waits at
  /// most `max_wait` for the stream; false once it is over (its last bytes,
  /// if any, are still there for read()).
  bool wait(std::chrono::milliseconds max_wait);

private:
  struct upstream; // the agent stream actor's handle

  connect_relay(caf::actor_system& sys, options opts, int client_fd);
  void on_frame(const json& frame);
  void on_broken(const agent_stream_error& why);
  void pump(std::chrono::milliseconds max_wait = std::chrono::milliseconds(1000));

  std::unique_ptr<caf::scoped_actor> self_;
  std::unique_ptr<upstream> stream_;
  options opts_;
  int client_fd_;
  std::string pending_;
  bool finished_ = false;
  bool aborted_ = false;
  bool lost_ = false; // the agent went away without a terminal frame: cut the connection
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_sent_;
};

/// A Connect server-stream reply around a relay.
envd_reply stream_reply(std::unique_ptr<connect_relay> relay);

} // namespace sandboxd::http
