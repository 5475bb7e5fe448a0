// The bounded executor for blocking work (crun, agent calls, fsync, file
// removal, webhook posts): a fixed ceiling of threads per lane, jobs beyond
// it wait in a queue. No job ever gets a thread of its own.
#pragma once

#include <cstddef>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"

namespace sandboxd {

/// Which queue a job waits in. Lifecycle work (create, kill, pause, samples,
/// recovery) is short and must never wait behind work that may last as long
/// as a client wants (an agent call that runs a command to its end, a webhook
/// post), nor behind the removal of what killed sandboxes left (a mass kill
/// queues one per sandbox): each lane has its own threads.
enum class lane { lifecycle, long_running, reclaim };

/// Threads per lane at most (they are started as demand first needs them).
constexpr size_t lifecycle_threads = 16;
constexpr size_t long_running_threads = 64;
constexpr size_t reclaim_threads = 4; // background work: a bounded share of the host

/// The system's executor for `l`, started on first use.
executor_actor blocking_executor(caf::actor_system& sys, lane l);

/// Whether `sys` runs on CAF's deterministic test scheduler (unit tests).
/// A detached actor's thread escapes that scheduler, so there the executor
/// runs each job inline and nothing is spawned detached.
bool on_test_scheduler(caf::actor_system& sys);

/// Stops the system's executors when it goes out of scope: declare it right
/// after the actor system. (The system must not be the one to drop them: it
/// would do so after its scheduler is gone.) Running jobs finish first.
class blocking_executors {
public:
  explicit blocking_executors(caf::actor_system& sys) : sys_(sys) {}
  ~blocking_executors();
  blocking_executors(const blocking_executors&) = delete;
  blocking_executors& operator=(const blocking_executors&) = delete;

private:
  caf::actor_system& sys_;
};

} // namespace sandboxd
