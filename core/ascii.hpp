// ASCII case folding for protocol tokens (header names, host names, schemes):
// never locale-dependent, never touching bytes above 0x7f.
#pragma once

#include <string>

namespace sandboxd {

inline std::string ascii_lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return s;
}

} // namespace sandboxd
