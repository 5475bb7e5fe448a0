#include "runtime/agent/secrets.hpp"

#include <mutex>
#include <set>

namespace sandboxd::agent {

namespace {

constexpr size_t kMinSecretLength = 8;

std::mutex mu;
std::set<std::string>& secrets() {
  static std::set<std::string> s;
  return s;
}

}  // namespace

void add_secret(const std::string& value) {
  if (value.size() < kMinSecretLength) return;
  std::lock_guard<std::mutex> lock(mu);
  secrets().insert(value);
}

std::string redact(std::string data) {
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& s : secrets()) {
    for (auto at = data.find(s); at != std::string::npos; at = data.find(s, at))
      data.replace(at, s.size(), "[redacted]");
  }
  return data;
}

}  // namespace sandboxd::agent
