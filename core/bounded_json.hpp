// JSON from outside (clients, sandboxes) parsed with limits: a size cap and a
// nesting cap checked by a linear scan before the parser sees the text.
// nlohmann's parser is iterative, but dump, copy and compare recurse: a body
// nested 200,000 deep would overflow the stack later, far from the parse.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace sandboxd {

struct json_limits {
  size_t max_bytes = 16u << 20;
  int max_depth = 64;
};

/// The deepest nesting of arrays and objects in `text` (strings skipped), or
/// -1 once it passes `stop_at` (the scan ends there).
int json_nesting(std::string_view text, int stop_at);

/// Parses `text` within `limits`: 413 when too large, 400 when too deep or
/// not JSON. `what` names the text in the message ("request body").
result<nlohmann::json> parse_json_bounded(std::string_view text, const json_limits& limits,
                                          const std::string& what);

/// Serializes for the wire whatever a sandbox put in a string: bytes that
/// are not UTF-8 become U+FFFD instead of an exception.
std::string dump_lossy(const nlohmann::json& j, int indent = -1);

} // namespace sandboxd
