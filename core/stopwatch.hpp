// Times the phases of one operation, for a debug line that says where the
// milliseconds went ("disk 3.1 ms, mounts 2.0 ms, ...").
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace sandboxd {

class stopwatch {
public:
  /// Ends the phase running since the last lap (or the start) as `name`.
  void lap(const char* name) {
    auto now = std::chrono::steady_clock::now();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %.1f ms", laps_.empty() ? "" : ", ", name,
                  std::chrono::duration<double, std::milli>(now - last_).count());
    laps_ += buf;
    last_ = now;
  }
  /// Every lap so far, and the total.
  std::string summary() const {
    char buf[48];
    std::snprintf(buf, sizeof buf, " (total %.1f ms)",
                  std::chrono::duration<double, std::milli>(last_ - start_).count());
    return laps_ + buf;
  }

private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
  std::string laps_;
};

} // namespace sandboxd
