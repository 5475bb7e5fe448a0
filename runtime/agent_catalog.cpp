#include "runtime/agent_catalog.hpp"

#include <fstream>

#include <nlohmann/json.hpp>

namespace sandboxd {

result<agent_catalog> agent_catalog::load(const std::string& file) {
  std::ifstream in{file};
  if (!in)
    return internal_error("cannot read agent catalogue " + file);
  agent_catalog cat;
  try {
    auto doc = nlohmann::json::parse(in);
    for (auto& [name, a] : doc.at("agents").items()) {
      agent_spec s;
      s.name = name;
      if (a.contains("command") && a["command"].is_string())
        s.command = a["command"].get<std::string>();
      s.unavailable_reason = a.value("unavailable", "not installed on this server");
      s.key_env = a.at("key_env").get<std::string>();
      s.model_prefixes = a.value("model_prefixes", std::vector<std::string>{});
      s.model_required = a.value("model_required", false);
      s.templates = a.value("templates", std::map<std::string, std::string>{});
      s.cancel_grace_s = a.value("cancel_grace_seconds", 10);
      if (s.key_env.empty() || s.cancel_grace_s < 0)
        return internal_error("agent catalogue " + file + ": bad entry " + name);
      cat.agents_[name] = std::move(s);
    }
  } catch (const std::exception& e) {
    return internal_error("agent catalogue " + file + ": " + e.what());
  }
  return cat;
}

result<agent_spec> agent_catalog::find(const std::string& name) const {
  auto it = agents_.find(name);
  if (it == agents_.end())
    return failure{501, "unknown agent: " + name};
  return it->second;
}

status agent_catalog::check_model(const agent_spec& a, const std::string& model) {
  if (model.empty())
    return a.model_required ? bad_request("model is required for agent " + a.name) : success();
  if (a.model_prefixes.empty())
    return success();
  std::string list;
  for (auto& p : a.model_prefixes) {
    if (model.rfind(p, 0) == 0)
      return success();
    list += (list.empty() ? "" : ", ") + p;
  }
  return bad_request("model for agent " + a.name + " must start with one of: " + list);
}

std::vector<std::string> agent_catalog::key_envs() const {
  std::vector<std::string> out;
  for (auto& [_, a] : agents_)
    out.push_back(a.key_env);
  return out;
}

} // namespace sandboxd
