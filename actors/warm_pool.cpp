#include "actors/warm_pool.hpp"

#include <algorithm>

namespace sandboxd {

warm_pool::warm_pool(std::map<std::string, size_t> sizes) : sizes_(std::move(sizes)) {
  for (auto it = sizes_.begin(); it != sizes_.end();)
    it = it->second == 0 ? sizes_.erase(it) : std::next(it);
}

std::optional<std::string>
warm_pool::next(size_t live, size_t capacity, int64_t now_ms,
                const std::function<bool(const std::string&)>& bootable) const {
  if (booting_ || draining_ || creating_ > 0 || rests_for(now_ms) > 0)
    return std::nullopt;
  if (live + ready() >= capacity)
    return std::nullopt;
  // The emptiest template first (relative to its size), so that one large
  // pool never starves the others.
  std::optional<std::string> best;
  double best_fill = 1.0;
  for (auto& [name, want] : sizes_) {
    auto it = ready_.find(name);
    size_t have = it == ready_.end() ? 0 : it->second.size();
    double fill = static_cast<double>(have) / static_cast<double>(want);
    if (have < want && fill < best_fill && bootable(name)) {
      best = name;
      best_fill = fill;
    }
  }
  return best;
}

int64_t warm_pool::rests_for(int64_t now_ms) const {
  return std::max<int64_t>(0, std::max(resume_at_ms_, quiet_until_ms_) - now_ms);
}

void warm_pool::boot_started() { booting_ = true; }

void warm_pool::boot_done(const std::string& name, const std::string& id) {
  booting_ = false;
  ready_[name].push_back(id);
}

void warm_pool::boot_failed(int64_t now_ms) {
  booting_ = false;
  resume_at_ms_ = now_ms + backoff_ms;
}

std::optional<std::string> warm_pool::take(const std::string& name) {
  auto it = ready_.find(name);
  if (it == ready_.end() || it->second.empty())
    return std::nullopt;
  auto id = std::move(it->second.front());
  it->second.pop_front();
  return id;
}

std::optional<std::string> warm_pool::give_way() {
  std::deque<std::string>* fullest = nullptr;
  for (auto& [name, ids] : ready_)
    if (!ids.empty() && (!fullest || ids.size() > fullest->size()))
      fullest = &ids;
  if (!fullest)
    return std::nullopt;
  auto id = std::move(fullest->back());
  fullest->pop_back();
  return id;
}

std::vector<std::string> warm_pool::drain() {
  draining_ = true;
  std::vector<std::string> out;
  for (auto& [name, ids] : ready_)
    out.insert(out.end(), ids.begin(), ids.end());
  ready_.clear();
  return out;
}

size_t warm_pool::ready() const {
  size_t n = 0;
  for (auto& [name, ids] : ready_)
    n += ids.size();
  return n;
}

std::map<std::string, uint64_t> warm_pool::ready_by_template() const {
  std::map<std::string, uint64_t> out;
  for (auto& [name, want] : sizes_) {
    auto it = ready_.find(name);
    out[name] = it == ready_.end() ? 0 : it->second.size();
  }
  return out;
}

bool warm_pool::short_of_target() const {
  for (auto& [name, want] : sizes_) {
    auto it = ready_.find(name);
    if ((it == ready_.end() ? 0 : it->second.size()) < want)
      return true;
  }
  return false;
}

} // namespace sandboxd
