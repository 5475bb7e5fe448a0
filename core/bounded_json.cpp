#include "core/bounded_json.hpp"

namespace sandboxd {

int json_nesting(std::string_view text, int stop_at) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > stop_at)
            return -1;
        }
        break;
      case ']':
      case '}':
        --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

result<nlohmann::json> parse_json_bounded(std::string_view text, const json_limits& limits,
                                          const std::string& what) {
  if (text.size() > limits.max_bytes)
    return failure{413, what + " is larger than " + std::to_string(limits.max_bytes) + " bytes"};
  if (json_nesting(text, limits.max_depth) < 0)
    return bad_request(what + " is nested deeper than " + std::to_string(limits.max_depth)
                       + " levels");
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded())
    return bad_request(what + " is not valid JSON");
  return j;
}

std::string dump_lossy(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace sandboxd
