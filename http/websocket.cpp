#include "http/websocket.hpp"

#include <openssl/sha.h>

#include "runtime/base64.hpp"

namespace sandboxd::http::websocket {

namespace {

constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

failure protocol_error(std::string why) {
  return {1002, std::move(why)};
}

bool is_control(uint8_t op) {
  return op >= 8;
}

bool known(uint8_t op) {
  return op <= 2 || (op >= 8 && op <= 10);
}

} // namespace

std::string accept_key(const std::string& client_key) {
  std::string text = client_key + std::string{guid};
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return base64::encode({reinterpret_cast<const char*>(digest), sizeof digest});
}

bool valid_client_key(const std::string& key) {
  auto raw = base64::decode(key);
  return raw && raw->size() == 16;
}

std::string frame(opcode op, std::string_view payload) {
  std::string out;
  out.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(op)));
  auto n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((static_cast<uint64_t>(n) >> shift) & 0xFF));
  }
  out.append(payload);
  return out;
}

std::string close_frame(uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  // A control frame carries at most 125 bytes; the reason is cut to fit.
  payload.append(reason.substr(0, 123));
  return frame(opcode::close, payload);
}

result<std::vector<message>> reader::feed(std::string_view bytes) {
  pending_.append(bytes);
  std::vector<message> out;
  size_t at = 0;
  for (;;) {
    auto left = pending_.size() - at;
    if (left < 2)
      break;
    auto b0 = static_cast<uint8_t>(pending_[at]);
    auto b1 = static_cast<uint8_t>(pending_[at + 1]);
    bool fin = b0 & 0x80;
    uint8_t op = b0 & 0x0F;
    if (b0 & 0x70)
      return protocol_error("reserved bits set (no extension was agreed)");
    if (!known(op))
      return protocol_error("unknown opcode " + std::to_string(op));
    if (!(b1 & 0x80))
      return protocol_error("a client frame must be masked");
    uint64_t len = b1 & 0x7F;
    size_t head = 2;
    if (len == 126) {
      if (left < 4)
        break;
      len = (static_cast<uint64_t>(static_cast<uint8_t>(pending_[at + 2])) << 8)
            | static_cast<uint8_t>(pending_[at + 3]);
      head = 4;
    } else if (len == 127) {
      if (left < 10)
        break;
      len = 0;
      for (size_t i = 0; i < 8; ++i)
        len = (len << 8) | static_cast<uint8_t>(pending_[at + 2 + i]);
      if (len >> 63)
        return protocol_error("a 64-bit length must have its top bit clear");
      head = 10;
    }
    if (is_control(op) && (!fin || len > 125))
      return protocol_error("a control frame must be whole and at most 125 bytes");
    // Compared so that nothing can wrap: partial_ never exceeds max_.
    if (!is_control(op) && len > max_ - partial_.size())
      return failure{1009, "a message is larger than " + std::to_string(max_) + " bytes"};
    if (left < head + 4 || left - head - 4 < len)
      break;
    const char* mask = pending_.data() + at + head;
    std::string payload = pending_.substr(at + head + 4, static_cast<size_t>(len));
    for (size_t i = 0; i < payload.size(); ++i)
      payload[i] = static_cast<char>(payload[i] ^ mask[i % 4]);
    at += head + 4 + static_cast<size_t>(len);
    if (is_control(op)) {
      out.push_back({static_cast<opcode>(op), std::move(payload)});
      continue;
    }
    if (op == 0) {
      if (!partial_op_)
        return protocol_error("a continuation frame without a message to continue");
    } else {
      if (partial_op_)
        return protocol_error("a new message before the last one ended");
      partial_op_ = static_cast<opcode>(op);
    }
    partial_ += payload;
    if (fin) {
      out.push_back({*partial_op_, std::move(partial_)});
      partial_.clear();
      partial_op_.reset();
    }
  }
  pending_.erase(0, at);
  return out;
}

} // namespace sandboxd::http::websocket
