// Process output arrives in arbitrary chunks; the sandbox's log keeps whole
// lines, as UTF-8 (other bytes become U+FFFD once a line is whole, so a
// character split across chunks survives). One splitter per stream (stdout,
// stderr) of one process. A line longer than max_line is cut into pieces:
// output without newlines must not grow the server.
#pragma once

#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/utf8_lossy.hpp"
#include "storage/store.hpp"

namespace sandboxd {

class output_lines {
public:
  explicit output_lines(std::string stream) : stream_(std::move(stream)) {}

  /// Adds `data`; complete lines go to `out`.
  void feed(const std::string& data, int64_t ts, std::vector<store::log_line>& out) {
    pending_ += data;
    size_t start = 0;
    for (auto nl = pending_.find('\n'); nl != std::string::npos; nl = pending_.find('\n', start)) {
      out.push_back({ts, stream_, utf8_lossy(pending_.substr(start, nl - start))});
      start = nl + 1;
    }
    pending_.erase(0, start);
    while (pending_.size() >= max_line) {
      out.push_back({ts, stream_, utf8_lossy(pending_.substr(0, max_line))});
      pending_.erase(0, max_line);
    }
  }

  /// The unterminated rest, as a last line.
  void flush(int64_t ts, std::vector<store::log_line>& out) {
    if (!pending_.empty())
      out.push_back({ts, stream_, utf8_lossy(pending_)});
    pending_.clear();
  }

  static constexpr size_t max_line = 64 * 1024;

private:
  std::string stream_;
  std::string pending_;
};

/// Appends `lines` to sandbox `id`'s log. The process already ran: a failed
/// write loses its lines, and says so in the server's log.
inline void log_output(store& db, const std::string& id,
                       const std::vector<store::log_line>& lines) {
  if (lines.empty())
    return;
  if (auto s = db.append_logs(id, lines); !s)
    spdlog::warn("sandbox {}: output not logged: {}", id, s.error().message);
}

} // namespace sandboxd
