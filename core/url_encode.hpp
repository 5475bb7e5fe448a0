// Percent-encoding for query values and paths in URLs we build.
#pragma once

#include <cstring>
#include <string>

namespace sandboxd {

/// RFC 3986 unreserved characters and those in `keep` (e.g. "/" for a path)
/// stay; every other byte becomes %XX.
inline std::string url_encode(const std::string& s, const char* keep = "") {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
        || c == '.' || c == '_' || c == '~' || (c != 0 && std::strchr(keep, c))) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 0xf]);
    }
  }
  return out;
}

} // namespace sandboxd
