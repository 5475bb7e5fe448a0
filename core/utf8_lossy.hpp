// Text that came out of a sandbox (process output, names) as valid UTF-8:
// bytes that are not UTF-8 become U+FFFD. For strings that are kept or
// rendered later by code that dumps strictly (the log store, JSON routes);
// one place of replacement, the serializer behind dump_lossy.
#pragma once

#include <string>

#include "core/bounded_json.hpp"

namespace sandboxd {

inline std::string utf8_lossy(const std::string& text) {
  // A dumped string is one valid JSON string literal: parsing it back
  // cannot fail, and yields the text with replacements.
  return nlohmann::json::parse(dump_lossy(nlohmann::json(text))).get<std::string>();
}

} // namespace sandboxd
