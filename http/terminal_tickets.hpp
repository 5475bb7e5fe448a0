// The terminals of envd: the tickets it has honoured, so each opens one
// terminal (a ticket travels in a URL, where proxies and histories may keep
// it), and how many are open, at most `max_open` (serve --max-terminals:
// each holds a second thread). Shared by envd's connection threads, hence
// the lock; a used ticket is forgotten when it expires (a minute).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace sandboxd::http {

class terminal_tickets {
public:
  explicit terminal_tickets(size_t max_open = 256) : max_open_(max_open) {}

  enum class verdict { fresh, used, full };

  /// Marks `ticket` (valid until `expires_s`) used, unless it already was;
  /// `full` when `max` unexpired tickets are held (the caller refuses).
  verdict consume(const std::string& ticket, int64_t expires_s, int64_t now_s, size_t max = 65536) {
    std::lock_guard<std::mutex> lock{mtx_};
    for (auto it = by_expiry_.begin(); it != by_expiry_.end() && it->first < now_s;)
      used_.erase(it->second), it = by_expiry_.erase(it);
    if (used_.count(ticket))
      return verdict::used;
    if (used_.size() >= max)
      return verdict::full;
    used_.emplace(ticket, expires_s);
    by_expiry_.emplace(expires_s, ticket);
    return verdict::fresh;
  }

  /// Takes one of the open terminals' places; false when all are taken.
  bool open() {
    std::lock_guard<std::mutex> lock{mtx_};
    if (open_ >= max_open_)
      return false;
    ++open_;
    return true;
  }

  /// Gives back a place open() took.
  void close() {
    std::lock_guard<std::mutex> lock{mtx_};
    --open_;
  }

private:
  std::mutex mtx_;
  size_t max_open_;
  size_t open_ = 0;
  std::map<std::string, int64_t> used_;
  std::multimap<int64_t, std::string> by_expiry_;
};

} // namespace sandboxd::http
