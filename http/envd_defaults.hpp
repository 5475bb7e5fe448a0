// Who runs a sandbox's processes and where when a request names neither
// (E2B's envd defaults: the template's last USER and WORKDIR; "user" in its
// home otherwise). Learnt from the sandbox's record once per sandbox: a
// sandbox's template never changes, and its id is never reused.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace sandboxd::http {

struct process_defaults {
  std::string user = "user";
  std::string workdir; // empty: the user's home
};

class envd_defaults {
public:
  std::optional<process_defaults> find(const std::string& sandbox_id) const {
    std::lock_guard<std::mutex> lock{mtx_};
    auto it = known_.find(sandbox_id);
    if (it == known_.end())
      return std::nullopt;
    return it->second;
  }

  void remember(const std::string& sandbox_id, process_defaults d) {
    std::lock_guard<std::mutex> lock{mtx_};
    // Bounded: past this many sandboxes it starts over (a lookup costs one
    // ask of the sandbox).
    if (known_.size() >= max_known)
      known_.clear();
    known_[sandbox_id] = std::move(d);
  }

private:
  static constexpr size_t max_known = 16384;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, process_defaults> known_;
};

} // namespace sandboxd::http
