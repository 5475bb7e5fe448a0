// Process output arrives in arbitrary chunks; the sandbox's log keeps whole
// lines. One splitter per stream (stdout, stderr) of one process.
#pragma once

#include <string>
#include <vector>

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
      out.push_back({ts, stream_, pending_.substr(start, nl - start)});
      start = nl + 1;
    }
    pending_.erase(0, start);
  }

  /// The unterminated rest, as a last line.
  void flush(int64_t ts, std::vector<store::log_line>& out) {
    if (!pending_.empty())
      out.push_back({ts, stream_, pending_});
    pending_.clear();
  }

private:
  std::string stream_;
  std::string pending_;
};

} // namespace sandboxd
