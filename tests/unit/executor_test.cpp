// actors/executor + run_blocking on a real actor system: blocking work runs
// on at most the lane's threads however many jobs arrive, every job's result
// comes back to its actor, and the lifecycle lane keeps moving while the
// long-running lane is saturated.
#include <gtest/gtest.h>

#include <dirent.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <caf/all.hpp>

#include "actors/blocking.hpp"

using namespace sandboxd;
using namespace std::chrono_literals;

namespace {

int thread_count() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (auto* e = ::readdir(d))
      n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

struct counter {
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> finished{0};
  void enter() {
    int now = ++running;
    for (int p = peak; now > p && !peak.compare_exchange_weak(p, now);) {
    }
  }
  void leave() {
    --running;
    ++finished;
  }
};

// Submits `jobs` jobs of `work` each to lane `l` from one actor; counts
// results that came back.
void submit(caf::actor_system& sys, lane l, int jobs, std::chrono::milliseconds work,
            counter& c, std::atomic<int>& answered) {
  sys.spawn([=, &c, &answered](caf::event_based_actor* self) {
    for (int i = 0; i < jobs; ++i)
      run_blocking(
        self, false,
        [&c, work, i]() -> result<int> {
          c.enter();
          std::this_thread::sleep_for(work);
          c.leave();
          return i;
        },
        [&answered, i](result<int> r) {
          if (r && *r == i)
            ++answered;
        },
        l);
  });
}

template <class Pred>
bool wait_until(Pred p, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > end)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

} // namespace

TEST(Executor, ManyJobsShareTheLanesBoundedThreads) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  blocking_executors executors{sys};
  int before = thread_count();
  counter c;
  std::atomic<int> answered{0};
  submit(sys, lane::lifecycle, 200, 10ms, c, answered);
  int most_threads = 0;
  ASSERT_TRUE(wait_until(
    [&] {
      most_threads = std::max(most_threads, thread_count());
      return answered == 200;
    },
    30s))
    << answered << " of 200 answered";
  EXPECT_EQ(c.finished, 200);
  EXPECT_LE(c.peak, static_cast<int>(lifecycle_threads));
  EXPECT_GE(c.peak, 2) << "jobs do run in parallel";
  EXPECT_LE(most_threads - before, static_cast<int>(lifecycle_threads) + 2)
    << "no thread per job";
}

TEST(Executor, LifecycleWorkIsNotQueuedBehindLongRunningWork) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  blocking_executors executors{sys};
  counter slow, quick;
  std::atomic<int> slow_answered{0}, quick_answered{0};
  // More long jobs than the long lane has threads: they queue...
  submit(sys, lane::long_running, static_cast<int>(long_running_threads) * 2, 2s, slow,
         slow_answered);
  ASSERT_TRUE(wait_until([&] { return slow.running == static_cast<int>(long_running_threads); },
                         10s));
  // ...and lifecycle work still goes through at once.
  auto t0 = std::chrono::steady_clock::now();
  submit(sys, lane::lifecycle, 20, 1ms, quick, quick_answered);
  ASSERT_TRUE(wait_until([&] { return quick_answered == 20; }, 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
  EXPECT_LE(slow.peak, static_cast<int>(long_running_threads));
  ASSERT_TRUE(wait_until([&] { return slow_answered == static_cast<int>(long_running_threads) * 2; },
                         30s));
}
