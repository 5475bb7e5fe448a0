#include "core/user_template.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace sandboxd {

namespace {

bool lower_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Debian policy 5.6.1: lower case letters, digits, '+', '-', '.'; at least
// two characters, starting with a letter or digit. Nothing else (no
// versions, architectures or commas) reaches mmdebstrap's --include.
bool valid_debian_package(const std::string& s) {
  if (s.size() < 2 || s.size() > 100 || !lower_or_digit(s[0]))
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return lower_or_digit(c) || c == '+' || c == '-' || c == '.';
  });
}

constexpr size_t max_packages = 100;
constexpr size_t max_env = 100;
constexpr size_t max_value = 8192;

const std::set<std::string> known_fields = {"name",     "extends",  "packages", "env",
                                            "startCmd", "cpuCount", "memoryMB"};

} // namespace

bool valid_env_name(const std::string& k) {
  if (k.empty() || k.size() > 128 || std::isdigit(static_cast<unsigned char>(k[0])))
    return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

status parse_resources(const nlohmann::json& body, std::optional<int>& cpu_count,
                       std::optional<int>& memory_mb) {
  auto cpu = bounded_int_field(body, "cpuCount", 1, 8);
  if (!cpu)
    return cpu.error();
  auto mem = bounded_int_field(body, "memoryMB", 128, 16384);
  if (!mem)
    return mem.error();
  cpu_count = *cpu;
  memory_mb = *mem;
  return success();
}

result<std::optional<int>> bounded_int_field(const nlohmann::json& body, const char* key, int lo, int hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return std::optional<int>{};
  if (!it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi)
    return bad_request(std::string{key} + " must be an integer from " + std::to_string(lo)
                       + " to " + std::to_string(hi));
  return std::optional<int>{it->get<int>()};
}

std::string to_string(build_status s) {
  switch (s) {
  case build_status::waiting:
    return "waiting";
  case build_status::building:
    return "building";
  case build_status::ready:
    return "ready";
  case build_status::error:
    return "error";
  }
  return "error";
}

std::optional<build_status> parse_build_status(const std::string& s) {
  for (auto b : {build_status::waiting, build_status::building, build_status::ready,
                 build_status::error})
    if (to_string(b) == s)
      return b;
  return std::nullopt;
}

bool valid_template_name(const std::string& s) {
  if (s.empty() || s.size() > 63 || !lower_or_digit(s[0]))
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return lower_or_digit(c) || c == '.' || c == '_' || c == '-';
  });
}

result<template_request> parse_template_request(const nlohmann::json& body,
                                                const std::string& org_id) {
  if (!body.is_object())
    return bad_request("the body must be a JSON object");
  for (auto& [k, v] : body.items()) {
    if (known_fields.count(k))
      continue;
    if (k == "run" || k == "steps" || k == "runCmd" || k == "dockerfile")
      return bad_request(
        "\"" + k + "\" is not accepted: a template is built from Debian packages only"
        " (their maintainer scripts are the only code the build runs as root)");
    return bad_request("unknown field \"" + k
                       + "\" (known: name, extends, packages, env, startCmd, cpuCount, memoryMB)");
  }
  template_request r;
  r.org_id = org_id;
  auto name = body.find("name");
  if (name == body.end() || !name->is_string() || name->get<std::string>().empty())
    return bad_request("name is required: a string");
  r.name = name->get<std::string>();
  if (!valid_template_name(r.name))
    return bad_request("name must be 1 to 63 of a-z, 0-9, '.', '_' and '-', starting with a"
                       " letter or digit: " + r.name);
  if (auto e = body.find("extends"); e != body.end() && !e->is_null()) {
    if (!e->is_string() || e->get<std::string>().empty())
      return bad_request("extends must be the name of a catalogue template");
    r.extends = e->get<std::string>();
  }
  if (auto p = body.find("packages"); p != body.end() && !p->is_null()) {
    if (!p->is_array())
      return bad_request("packages must be a list of Debian package names");
    if (p->size() > max_packages)
      return bad_request("packages: at most " + std::to_string(max_packages) + " packages");
    for (auto& x : *p) {
      if (!x.is_string())
        return bad_request("packages must be a list of Debian package names");
      auto s = x.get<std::string>();
      if (!valid_debian_package(s))
        return bad_request("packages: \"" + s
                           + "\" is not a Debian package name (lower case letters, digits,"
                             " '+', '-' and '.'; no versions or architectures)");
      r.packages.push_back(s);
    }
  }
  if (auto e = body.find("env"); e != body.end() && !e->is_null()) {
    if (!e->is_object())
      return bad_request("env must be an object of strings");
    if (e->size() > max_env)
      return bad_request("env: at most " + std::to_string(max_env) + " variables");
    for (auto& [k, v] : e->items()) {
      if (!valid_env_name(k))
        return bad_request("env: \"" + k
                           + "\" is not a variable name (letters, digits and '_', not"
                             " starting with a digit)");
      if (k.rfind("E2B_", 0) == 0 || k.rfind("SANDBOXD_", 0) == 0)
        return bad_request("env: " + k + " is reserved (E2B_* and SANDBOXD_* are set by sandboxd)");
      if (!v.is_string())
        return bad_request("env: " + k + " must be a string");
      auto s = v.get<std::string>();
      if (s.size() > max_value || s.find('\0') != std::string::npos)
        return bad_request("env: " + k + " must be a string of at most "
                           + std::to_string(max_value) + " bytes without NUL");
      r.env[k] = s;
    }
  }
  if (auto c = body.find("startCmd"); c != body.end() && !c->is_null()) {
    if (!c->is_string())
      return bad_request("startCmd must be a shell command (a string)");
    r.start_cmd = c->get<std::string>();
    if (r.start_cmd.size() > max_value || r.start_cmd.find('\0') != std::string::npos)
      return bad_request("startCmd must be at most " + std::to_string(max_value)
                         + " bytes without NUL");
  }
  if (auto s = parse_resources(body, r.cpu_count, r.memory_mb); !s)
    return s.error();
  return r;
}

} // namespace sandboxd
