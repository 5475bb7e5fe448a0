#include "http/body.hpp"

#include <cerrno>
#include <cstdlib>

namespace sandboxd::http {

result<json> parse_object(const std::string& body, bool allow_empty) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (allow_empty)
      return json::object();
    return bad_request("request body must be a JSON object");
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded())
    return bad_request("request body is not valid JSON");
  if (!j.is_object())
    return bad_request("request body must be a JSON object");
  return j;
}

result<std::string> string_field(const json& obj, const std::string& name,
                                 std::optional<std::string> fallback) {
  auto i = obj.find(name);
  if (i == obj.end() || i->is_null()) {
    if (fallback)
      return *fallback;
    return bad_request(name + " is required");
  }
  if (!i->is_string())
    return bad_request(name + " must be a string");
  return i->get<std::string>();
}

result<int64_t> int_field(const json& obj, const std::string& name,
                          std::optional<int64_t> fallback, int64_t lo,
                          int64_t hi) {
  auto i = obj.find(name);
  if (i == obj.end() || i->is_null()) {
    if (fallback)
      return *fallback;
    return bad_request(name + " is required");
  }
  if (!i->is_number_integer())
    return bad_request(name + " must be an integer");
  auto v = i->get<int64_t>();
  if (v < lo || v > hi)
    return bad_request(name + " must be between " + std::to_string(lo)
                       + " and " + std::to_string(hi));
  return v;
}

result<std::map<std::string, std::string>>
string_map_field(const json& obj, const std::string& name) {
  std::map<std::string, std::string> out;
  auto i = obj.find(name);
  if (i == obj.end() || i->is_null())
    return out;
  if (!i->is_object())
    return bad_request(name + " must be an object of strings");
  for (auto& [k, v] : i->items()) {
    if (!v.is_string())
      return bad_request(name + "." + k + " must be a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

result<int64_t> int_param(const std::optional<std::string>& raw,
                          const std::string& name, int64_t fallback, int64_t lo,
                          int64_t hi) {
  if (!raw || raw->empty())
    return fallback;
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoll(raw->c_str(), &end, 10);
  if (errno != 0 || *end != '\0')
    return bad_request(name + " must be an integer");
  if (v < lo || v > hi)
    return bad_request(name + " must be between " + std::to_string(lo)
                       + " and " + std::to_string(hi));
  return v;
}

} // namespace sandboxd::http
