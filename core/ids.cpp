#include "core/ids.hpp"

#include "core/crypto.hpp"

#include <sys/random.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <vector>

namespace sandboxd {

namespace {

void fill_random(uint8_t* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    auto r = getrandom(buf + got, n - got, 0);
    if (r < 0)
      throw std::runtime_error("getrandom failed");
    got += static_cast<size_t>(r);
  }
}

} // namespace

std::string random_hex(size_t bytes) {
  std::string buf(bytes, '\0');
  fill_random(reinterpret_cast<uint8_t*>(buf.data()), bytes);
  return hex_encode(buf);
}

std::string new_uuid() {
  uint8_t b[16];
  fill_random(b, sizeof b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
                b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

std::string new_sandbox_id() {
  static const char* alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  uint8_t b[20];
  fill_random(b, sizeof b);
  std::string id;
  // First character is a letter so the id is a valid hostname label.
  id.push_back(alphabet[b[0] % 26]);
  for (size_t i = 1; i < sizeof b; ++i)
    id.push_back(alphabet[b[i] % 36]);
  return id;
}

bool is_valid_sandbox_id(const std::string& id) {
  if (id.size() != 20)
    return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

std::string new_prefixed_id(const std::string& prefix, size_t hex_chars) {
  return prefix + random_hex((hex_chars + 1) / 2).substr(0, hex_chars);
}

bool is_prefixed_id(const std::string& id, const std::string& prefix, size_t hex_chars) {
  if (id.size() != prefix.size() + hex_chars || id.compare(0, prefix.size(), prefix) != 0)
    return false;
  for (size_t i = prefix.size(); i < id.size(); ++i)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return false;
  return true;
}

}  // namespace sandboxd
