// Durable event appends through the real event log actor: N writer threads,
// each sending its next append when the previous one is acknowledged (as
// sandbox actors do). Prints events/s and the acknowledgement latency.
//   event_log_bench DIR [writers=32] [events_per_writer=500]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/event_log.hpp"
#include "actors/executor.hpp"
#include "core/clock.hpp"
#include "storage/store.hpp"

using namespace sandboxd;
using clk = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [writers] [events_per_writer]\n", argv[0]);
    return 2;
  }
  int writers = argc > 2 ? std::stoi(argv[2]) : 32;
  int per_writer = argc > 3 ? std::stoi(argv[3]) : 500;
  auto db = store::open(argv[1]);
  if (!db) {
    std::fprintf(stderr, "open: %s\n", db.error().message.c_str());
    return 1;
  }
  std::shared_ptr<store> shared = std::move(*db);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  blocking_executors executors{sys};
  auto log = spawn_event_log(sys, shared, webhook_dispatcher_actor{}, {std::chrono::milliseconds{0}, {}});
  std::vector<std::vector<double>> lat(writers);
  std::vector<int> failed(writers, 0);
  auto start = clk::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      caf::scoped_actor self{sys};
      for (int i = 0; i < per_writer; ++i) {
        event e;
        e.id = "bench-" + std::to_string(w) + "-" + std::to_string(i);
        e.timestamp_ms = now_ms();
        e.sandbox_id = "bench" + std::to_string(w);
        e.team_id = "bench";
        auto t0 = clk::now();
        self->request(log, caf::infinite, atom::append::value, std::move(e))
          .receive([&](const event&) {},
                   [&](const caf::error&) { ++failed[w]; });
        lat[w].push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
      }
    });
  for (auto& t : threads)
    t.join();
  double secs = std::chrono::duration<double>(clk::now() - start).count();
  std::vector<double> all;
  for (auto& l : lat)
    all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all[std::min(all.size() - 1, size_t(p * all.size()))]; };
  int fails = 0;
  for (int f : failed)
    fails += f;
  std::printf("writers=%d events=%zu failed=%d  %.0f durable events/s  ack p50 %.2f ms  p99 %.2f ms\n",
              writers, all.size(), fails, all.size() / secs, pct(0.5), pct(0.99));
  caf::anon_send_exit(log, caf::exit_reason::user_shutdown);
  return fails ? 1 : 0;
}
