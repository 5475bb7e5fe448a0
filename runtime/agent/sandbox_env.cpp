#include "runtime/agent/sandbox_env.hpp"

#include <cstring>
#include <mutex>

extern char** environ;

namespace sandboxd::agent {

namespace {

// Connections are served on threads of their own: `environ` itself is never
// written after start, the additions live here behind a lock.
std::mutex mu;
std::map<std::string, std::string>& added() {
  static std::map<std::string, std::string> vars;
  return vars;
}

}  // namespace

void set_sandbox_env(const std::map<std::string, std::string>& vars) {
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& [k, v] : vars) added()[k] = v;
}

std::map<std::string, std::string> sandbox_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) env[std::string(static_cast<const char*>(*e), eq)] = std::string(eq + 1);
  }
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& [k, v] : added()) env[k] = v;
  return env;
}

}  // namespace sandboxd::agent
