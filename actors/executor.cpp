#include "actors/executor.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

#include <caf/scheduler/test_coordinator.hpp>

#include "actors/interfaces.hpp"

namespace sandboxd {

namespace {

// A worker: one detached actor, that is one thread, running jobs in turn.
// It ends after `linger` without work: threads come back under load and go
// away when idle (and a stopping system does not wait for idle workers).
constexpr auto linger = std::chrono::seconds(1);

const auto run_job = [](atom::run, blocking_job& job) {
  job.run();
  return atom::done::value;
};

executor_actor::behavior_type worker(executor_actor::pointer self) {
  return {run_job, caf::after(linger) >> [self] { self->quit(); }};
}

// On the test scheduler: the job runs in the executor actor itself, so the
// scheduler's run() drives it like any other message (never in production).
executor_actor::behavior_type inline_executor() {
  return {run_job};
}

struct dispatcher_state {
  size_t limit = 0;
  size_t started = 0;
  std::vector<executor_actor> idle;
  std::deque<std::pair<caf::typed_response_promise<atom::done>, blocking_job>> waiting;
};

using dispatcher_ptr = executor_actor::stateful_pointer<dispatcher_state>;

// Hands waiting jobs to idle workers, starting workers up to the limit.
void dispatch(dispatcher_ptr self) {
  auto& st = self->state;
  while (!st.waiting.empty()) {
    executor_actor w;
    if (!st.idle.empty()) {
      w = std::move(st.idle.back());
      st.idle.pop_back();
    } else if (st.started < st.limit) {
      // Linked: when the executor stops, so do its workers.
      w = self->spawn<caf::detached + caf::linked>(worker);
      self->monitor(w);
      ++st.started;
    } else {
      return; // every thread is busy: the job waits its turn
    }
    auto rp = std::move(st.waiting.front().first);
    auto job = std::move(st.waiting.front().second);
    st.waiting.pop_front();
    self->request(w, caf::infinite, atom::run::value, job)
      .then(
        [self, w, rp](atom::done) mutable {
          rp.deliver(atom::done::value);
          self->state.idle.push_back(w);
          dispatch(self);
        },
        [self, rp, job](caf::error& e) mutable {
          if (e != caf::sec::request_receiver_down) {
            rp.deliver(std::move(e));
            return;
          }
          // It reached a worker that had just ended idle: it did not run.
          self->state.waiting.emplace_front(rp, std::move(job));
          dispatch(self);
        });
  }
}

executor_actor::behavior_type dispatcher(dispatcher_ptr self, size_t limit) {
  self->state.limit = limit;
  self->set_down_handler([self](caf::down_msg& down) {
    auto& idle = self->state.idle;
    idle.erase(std::remove_if(idle.begin(), idle.end(),
                              [&](const executor_actor& w) { return w.address() == down.source; }),
               idle.end());
    --self->state.started;
    dispatch(self);
  });
  return {[self](atom::run, blocking_job& job) -> caf::result<atom::done> {
    auto rp = self->make_response_promise<atom::done>();
    self->state.waiting.emplace_back(rp, std::move(job));
    dispatch(self);
    return rp;
  }};
}

caf::atom_value name_of(lane l) {
  switch (l) {
    case lane::lifecycle: return caf::atom("blk-life");
    case lane::long_running: return caf::atom("blk-long");
    case lane::reclaim: return caf::atom("blk-recl");
  }
  return caf::atom("blk-life");
}

size_t threads_of(lane l) {
  switch (l) {
    case lane::lifecycle: return lifecycle_threads;
    case lane::long_running: return long_running_threads;
    case lane::reclaim: return reclaim_threads;
  }
  return lifecycle_threads;
}

std::mutex registry_mtx; // one executor per system and lane, even when first asked concurrently

} // namespace

executor_actor blocking_executor(caf::actor_system& sys, lane l) {
  auto name = name_of(l);
  std::lock_guard<std::mutex> guard{registry_mtx};
  if (auto known = sys.registry().get(name))
    return caf::actor_cast<executor_actor>(known);
  // Production spawns the dispatcher; only the test scheduler runs jobs inline.
  auto d = on_test_scheduler(sys) ? sys.spawn(inline_executor)
                                  : sys.spawn(dispatcher, threads_of(l));
  sys.registry().put(name, caf::actor_cast<caf::strong_actor_ptr>(d));
  return d;
}

bool on_test_scheduler(caf::actor_system& sys) {
  return dynamic_cast<caf::scheduler::test_coordinator*>(&sys.scheduler()) != nullptr;
}

blocking_executors::~blocking_executors() {
  std::lock_guard<std::mutex> guard{registry_mtx};
  for (auto l : {lane::lifecycle, lane::long_running, lane::reclaim}) {
    if (auto d = sys_.registry().get(name_of(l))) {
      caf::anon_send_exit(caf::actor_cast<caf::actor>(d), caf::exit_reason::user_shutdown);
      sys_.registry().erase(name_of(l));
    }
  }
}

} // namespace sandboxd
