// The server side of RFC 6455 WebSockets, as pure functions and a frame
// reader that holds what it was fed: no I/O here (envd_terminal does it).
// Client frames must be masked; a message is bounded in size; control
// frames are short and whole, as the RFC requires.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace sandboxd::http::websocket {

enum class opcode : uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

/// Sec-WebSocket-Accept for the client's Sec-WebSocket-Key.
std::string accept_key(const std::string& client_key);

/// Whether `key` is a Sec-WebSocket-Key: base64 of 16 bytes.
bool valid_client_key(const std::string& key);

/// One unmasked server frame (FIN set) carrying `payload`.
std::string frame(opcode op, std::string_view payload);

/// A close frame with `code` (1000 normal, 1008 policy, 1009 too big, 1011
/// server error) and a reason cut to what fits a control frame.
std::string close_frame(uint16_t code, std::string_view reason);

struct message {
  opcode op = opcode::binary; // text, binary, close, ping or pong
  std::string payload;
};

/// Client frames in, whole messages out (fragments joined).
class reader {
public:
  explicit reader(size_t max_message) : max_(max_message) {}
  /// Appends `bytes`; the messages now whole. A protocol violation (an
  /// unmasked frame, a message past the bound, a bad opcode) is a failure
  /// whose status is the close code to answer with (1002 or 1009).
  result<std::vector<message>> feed(std::string_view bytes);

private:
  size_t max_;
  std::string pending_;      // bytes not yet a whole frame
  std::string partial_;      // a fragmented message's payload so far
  std::optional<opcode> partial_op_;
};

} // namespace sandboxd::http::websocket
