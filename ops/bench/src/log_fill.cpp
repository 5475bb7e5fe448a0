// Bench-only: appends the history of N ended sandboxes to a stopped server's
// store (created, two timeout updates, killed: four events each, in batches
// of 1,000 through the store's own append, hash chain included), so that a
// restart can be measured with a long log. Usage: log_fill DBDIR ORG_ID EVENTS
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "storage/store.hpp"

using namespace sandboxd;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DBDIR ORG_ID EVENTS\n", argv[0]);
    return 2;
  }
  auto db = store::open(argv[1]);
  if (!db) {
    std::fprintf(stderr, "open: %s\n", db.error().message.c_str());
    return 1;
  }
  std::string org = argv[2];
  uint64_t total = std::strtoull(argv[3], nullptr, 10);
  auto t = now_ms() - total; // one event per millisecond, ending now
  std::vector<event> batch;
  for (uint64_t n = 0; n < total; ++n) {
    auto i = n / 4;
    event e;
    e.id = "fill-" + std::to_string(n);
    e.timestamp_ms = t++;
    e.sandbox_id = "fill" + std::to_string(i);
    e.template_id = "base";
    e.team_id = org;
    e.execution_id = "exec-fill-" + std::to_string(i);
    e.metadata = {{"bench", "restart"}};
    e.end_at_ms = e.timestamp_ms + 300000;
    switch (n % 4) {
      case 0:
        e.type = event_type::created;
        e.cpu_count = 1;
        e.memory_mb = 512;
        e.disk_size_mb = 1024;
        e.timeout_s = 300;
        break;
      case 1:
      case 2:
        e.type = event_type::updated;
        e.timeout_s = 300;
        break;
      default:
        e.type = event_type::killed;
        e.reason = kill_reason::request;
        e.execution = execution_info{e.timestamp_ms - 3, 1, 512, 3};
    }
    batch.push_back(std::move(e));
    if (batch.size() == 1000 || n + 1 == total) {
      auto r = (*db)->append(std::move(batch));
      if (!r) {
        std::fprintf(stderr, "append: %s\n", r.error().message.c_str());
        return 1;
      }
      batch.clear();
    }
  }
  std::printf("%llu events appended; last seq %llu\n", static_cast<unsigned long long>(total),
              static_cast<unsigned long long>((*db)->last_seq()));
  return 0;
}
