#include "http/body.hpp"

#include <cerrno>
#include <cctype>
#include <cstdlib>

#include "core/bounded_json.hpp"

namespace sandboxd::http {

result<json> parse_object(const std::string& body, bool allow_empty) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (allow_empty)
      return json::object();
    return bad_request("request body must be a JSON object");
  }
  auto parsed = parse_json_bounded(body, {max_request_body, max_body_depth}, "request body");
  if (!parsed)
    return parsed.error();
  json j = std::move(*parsed);
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

result<std::string> nonempty_string_field(const json& obj, const std::string& name) {
  auto s = string_field(obj, name);
  if (s && s->empty())
    return bad_request(name + " must not be empty");
  return s;
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

result<bool> bool_field(const json& obj, const std::string& name, bool fallback) {
  auto i = obj.find(name);
  if (i == obj.end() || i->is_null())
    return fallback;
  if (!i->is_boolean())
    return bad_request(name + " must be true or false");
  return i->get<bool>();
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

std::string url_decode(const std::string& s, bool plus_is_space) {
  std::string out;
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) && hex(s[i + 2])) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> parse_metadata_filter(const std::string& s) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    auto end = s.find('&', start);
    auto pair = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto eq = pair.find('=');
    if (!pair.empty())
      out[url_decode(url_decode(pair.substr(0, eq)))]
        = eq == std::string::npos ? "" : url_decode(url_decode(pair.substr(eq + 1)));
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return out;
}

result<std::map<std::string, std::string>> env_field(const json& obj, const std::string& name) {
  auto env = string_map_field(obj, name);
  if (!env)
    return env;
  for (auto& [k, v] : *env)
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      return bad_request(name + " has an invalid name: '" + k + "'");
  return env;
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
