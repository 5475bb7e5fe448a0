// One reading of a sandbox's resource use: what the runtime measures, the
// metrics history keeps, and E2B's SandboxMetric shows.
#pragma once

#include <cstdint>

#include "core/inspect.hpp"

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

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, container_sample& x) {
  return f(caf::meta::type_name("container_sample"), x.timestamp_ms, x.cpu_count,
           x.cpu_used_pct, x.mem_used, x.mem_total, x.mem_cache, x.disk_used,
           x.disk_total);
}

} // namespace sandboxd
