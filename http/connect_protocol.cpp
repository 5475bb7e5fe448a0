#include "http/connect_protocol.hpp"

#include "core/bounded_json.hpp"

namespace sandboxd::http::connect {

std::string code_for(const failure& f) {
  switch (f.status) {
    case 400: return "invalid_argument";
    case 401: return "unauthenticated";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 409: return "already_exists";
    case 412: return "failed_precondition";
    case 413:
    case 429: return "resource_exhausted";
    case 501: return "unimplemented";
    case 502:
    case 503: return "unavailable";
    case 504: return "deadline_exceeded";
    default: return "internal";
  }
}

int http_status_for(const std::string& code) {
  if (code == "canceled") return 499;
  if (code == "invalid_argument" || code == "failed_precondition" || code == "out_of_range")
    return 400;
  if (code == "unauthenticated") return 401;
  if (code == "permission_denied") return 403;
  if (code == "not_found") return 404;
  if (code == "already_exists" || code == "aborted") return 409;
  if (code == "resource_exhausted") return 429;
  if (code == "unimplemented") return 501;
  if (code == "unavailable") return 503;
  if (code == "deadline_exceeded") return 504;
  return 500;
}

json error_body(const failure& f) {
  return {{"code", code_for(f)}, {"message", f.message}};
}

std::string envelope(const json& message, bool end) {
  auto payload = message.dump();
  std::string out;
  out.reserve(payload.size() + 5);
  out.push_back(static_cast<char>(end ? 0x02 : 0x00));
  auto n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  out += payload;
  return out;
}

result<std::vector<envelope_reader::message>> envelope_reader::feed(std::string_view bytes) {
  pending_.append(bytes);
  std::vector<message> out;
  size_t at = 0;
  while (pending_.size() - at >= 5) {
    uint32_t n = 0;
    for (int i = 1; i <= 4; ++i)
      n = n << 8 | static_cast<unsigned char>(pending_[at + i]);
    if (n > max_)
      return bad_request("a stream message of " + std::to_string(n) + " bytes: at most "
                         + std::to_string(max_) + " are read");
    if (pending_.size() - at - 5 < n)
      break;
    auto body = parse_json_bounded(std::string_view(pending_).substr(at + 5, n),
                                   {max_, max_message_depth}, "stream message");
    if (!body)
      return body.error();
    out.push_back({(pending_[at] & 0x02) != 0, std::move(*body)});
    at += 5 + n;
  }
  pending_.erase(0, at);
  return out;
}

std::string end_stream(const std::optional<failure>& error) {
  if (!error)
    return envelope(json::object(), true);
  return envelope({{"error", error_body(*error)}}, true);
}

result<json> parse_stream_request(const std::string& body) {
  if (body.size() >= 5 && (static_cast<uint8_t>(body[0]) & ~0x01u) == 0) {
    uint32_t n = 0;
    for (int i = 1; i <= 4; ++i)
      n = (n << 8) | static_cast<uint8_t>(body[i]);
    if (body[0] & 0x01)
      return bad_request("compressed messages are not supported");
    if (n != body.size() - 5)
      return bad_request("malformed envelope: length does not match the body");
    return parse_unary_request(body.substr(5));
  }
  return parse_unary_request(body);
}

result<json> parse_unary_request(const std::string& body) {
  if (body.empty())
    return json::object();
  auto j = parse_json_bounded(body, {max_message_bytes, max_message_depth}, "request message");
  if (!j)
    return j.error();
  if (!j->is_object())
    return bad_request("request message is not a JSON object");
  return j;
}

} // namespace sandboxd::http::connect
