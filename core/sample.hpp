// One reading of a sandbox's resource use: what the runtime measures, the
// metrics history keeps, and E2B's SandboxMetric shows.
#pragma once

#include <cstdint>

namespace sandboxd {

struct container_sample {
  int64_t timestamp_ms = 0;
  int cpu_count = 0;
  double cpu_used_pct = 0;
  int64_t mem_used = 0;
  int64_t mem_total = 0;
  int64_t mem_cache = 0;
  int64_t disk_used = 0;
  int64_t disk_total = 0;
};

} // namespace sandboxd
