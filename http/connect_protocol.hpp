// The Connect protocol (connectrpc.com), JSON codec: what the E2B SDKs speak
// to envd. Unary calls are plain JSON both ways with errors as non-200
// {"code","message"}; server streams are enveloped messages
// [flags u8][len u32 BE][json], the last one flagged 0x02 (end of stream)
// carrying {} or {"error":{...}}.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace sandboxd::http::connect {

using json = nlohmann::json;

/// The largest request message of any envd RPC (SendInput may carry a big
/// stdin write); the listener refuses a larger Content-Length unread.
constexpr size_t max_message_bytes = 16u << 20;

/// Nesting allowed in a request message: envd's messages are a few levels
/// deep (Start: process.envs is a flat map).
constexpr int max_message_depth = 64;

/// Connect's code for a failure ("not_found", "invalid_argument", ...).
std::string code_for(const failure& f);

/// The HTTP status Connect prescribes for a code.
int http_status_for(const std::string& code);

/// A unary error body: {"code":"not_found","message":"..."}.
json error_body(const failure& f);

/// One enveloped message; `end` marks the end-of-stream message.
std::string envelope(const json& message, bool end = false);

/// Splits a server stream's bytes, as they arrive, into its messages (what a
/// client reads: the CLI's exec and shell). Bounded: a message larger than
/// `max_message` or deeper than max_message_depth is an error.
class envelope_reader {
public:
  struct message {
    bool end = false; // the end-of-stream message
    json body;
  };
  explicit envelope_reader(size_t max_message = 16u << 20) : max_(max_message) {}
  /// Appends `bytes`; the messages now whole, in order.
  result<std::vector<message>> feed(std::string_view bytes);

private:
  size_t max_;
  std::string pending_;
};

/// The end-of-stream message: {} or {"error":{code,message}}.
std::string end_stream(const std::optional<failure>& error = std::nullopt);

/// The request message of a server-streaming call (one envelope; a plain JSON
/// body is accepted too).
result<json> parse_stream_request(const std::string& body);

/// The request message of a unary call (plain JSON object; empty → {}),
/// within max_message_bytes and max_message_depth.
result<json> parse_unary_request(const std::string& body);

} // namespace sandboxd::http::connect
