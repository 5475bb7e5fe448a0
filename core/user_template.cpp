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

nlohmann::json to_storage_json(const template_build& b) {
  nlohmann::json j = {{"id", b.id},
          {"template", b.template_id},
          {"org", b.org_id},
          {"status", to_string(b.status)},
          {"reason", b.reason},
          {"created", b.created_ms},
          {"updated", b.updated_ms},
          {"finished", b.finished_ms},
          {"parent", b.parent},
          {"packages", b.packages},
          {"run", b.run},
          {"env", b.env},
          {"start_cmd", b.start_cmd},
          {"ready_port", b.ready_port},
          {"cpu", b.cpu_count},
          {"mem", b.memory_mb},
          {"hash", b.hash}};
  if (b.code)
    j["code"] = true;
  if (b.steps) {
    auto& t = *b.steps;
    auto steps = nlohmann::json::array();
    for (auto& x : t.steps)
      steps.push_back({{"type", x.type}, {"args", x.args}, {"files", x.files_hash},
                       {"force", x.force}});
    j["steps"] = {{"from_template", t.from_template}, {"from_image", t.from_image},
                  {"steps", steps}, {"start_cmd", t.start_cmd}, {"ready_cmd", t.ready_cmd},
                  {"force", t.force}};
  }
  if (b.code) {
    j["snapshot"] = b.snapshot_id;
    j["failed_step"] = b.failed_step;
    j["default_user"] = b.default_user;
    j["default_workdir"] = b.default_workdir;
    if (b.asked_cpu)
      j["asked_cpu"] = *b.asked_cpu;
    if (b.asked_memory_mb)
      j["asked_memory_mb"] = *b.asked_memory_mb;
  }
  // Any build may hold tags (POST /templates/tags), not only one in code.
  if (!b.tags.empty())
    j["tags"] = b.tags;
  if (!b.tag_times.empty())
    j["tag_times"] = b.tag_times;
  return j;
}

std::optional<template_build> build_from_storage_json(const nlohmann::json& j) {
  try {
    template_build b;
    b.id = j.at("id");
    b.template_id = j.at("template");
    b.org_id = j.at("org");
    auto st = parse_build_status(j.at("status").get<std::string>());
    if (!st)
      return std::nullopt;
    b.status = *st;
    b.reason = j.value("reason", "");
    b.created_ms = j.value("created", int64_t{0});
    b.updated_ms = j.value("updated", int64_t{0});
    b.finished_ms = j.value("finished", int64_t{0});
    b.parent = j.value("parent", "");
    b.packages = j.value("packages", std::vector<std::string>{});
    b.run = j.value("run", std::vector<std::string>{});
    b.env = j.value("env", std::map<std::string, std::string>{});
    b.start_cmd = j.value("start_cmd", "");
    b.ready_port = j.value("ready_port", 0);
    b.cpu_count = j.value("cpu", 2);
    b.memory_mb = j.value("mem", 512);
    b.hash = j.at("hash");
    b.code = j.value("code", false);
    if (auto t = j.find("steps"); t != j.end()) {
      template_steps steps;
      steps.from_template = t->at("from_template");
      steps.from_image = t->value("from_image", "");
      for (auto& x : t->at("steps"))
        steps.steps.push_back({x.at("type"), x.value("args", std::vector<std::string>{}),
                               x.value("files", ""), x.value("force", false)});
      steps.start_cmd = t->value("start_cmd", "");
      steps.ready_cmd = t->value("ready_cmd", "");
      steps.force = t->value("force", false);
      b.steps = std::move(steps);
    }
    b.snapshot_id = j.value("snapshot", "");
    b.failed_step = j.value("failed_step", "");
    b.tags = j.value("tags", std::vector<std::string>{});
    b.default_user = j.value("default_user", "");
    b.default_workdir = j.value("default_workdir", "");
    b.tag_times = j.value("tag_times", std::map<std::string, int64_t>{});
    if (j.contains("asked_cpu"))
      b.asked_cpu = j.at("asked_cpu").get<int>();
    if (j.contains("asked_memory_mb"))
      b.asked_memory_mb = j.at("asked_memory_mb").get<int>();
    return b;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

nlohmann::json to_storage_json(const user_template& t) {
  nlohmann::json j = {{"id", t.id},
                      {"org", t.org_id},
                      {"name", t.name},
                      {"created", t.created_ms},
                      {"updated", t.updated_ms},
                      {"builds", t.build_count},
                      {"latest", t.latest_build},
                      {"status", to_string(t.latest_status)}};
  if (t.ready)
    j["ready"] = to_storage_json(*t.ready);
  return j;
}

std::optional<user_template> user_template_from_storage_json(const nlohmann::json& j) {
  try {
    user_template t;
    t.id = j.at("id");
    t.org_id = j.at("org");
    t.name = j.at("name");
    t.created_ms = j.value("created", int64_t{0});
    t.updated_ms = j.value("updated", int64_t{0});
    t.build_count = j.value("builds", uint64_t{0});
    t.latest_build = j.value("latest", "");
    t.latest_status = parse_build_status(j.value("status", "error")).value_or(build_status::error);
    if (j.contains("ready")) {
      t.ready = build_from_storage_json(j.at("ready"));
      if (!t.ready)
        return std::nullopt;
    }
    return t;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

nlohmann::json to_storage_json(const build_log_entry& e) {
  return {{"t", e.timestamp_ms}, {"v", e.level}, {"s", e.step}, {"m", e.message}};
}

std::optional<build_log_entry> build_log_from_storage_json(const nlohmann::json& j) {
  if (!j.is_object())
    return std::nullopt;
  try {
    return build_log_entry{j.value("t", int64_t{0}), j.value("v", "info"), j.value("s", ""),
                           j.value("m", "")};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

} // namespace sandboxd
