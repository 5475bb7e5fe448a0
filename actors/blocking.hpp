// Runs blocking work (crun, agent calls, fsync) off the scheduler, on the
// bounded executor (actors/executor.hpp); its result comes back as a
// message to the caller, in the caller's context.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include <caf/all.hpp>

#include "actors/executor.hpp"
#include "actors/interfaces.hpp"

namespace sandboxd {

/// Calls `f()` (returning result<T>) on an executor thread of lane `l`, then
/// `then(result)` inside `self`. With `serialize`, `self` handles no other
/// message until the result is back: lifecycle transitions never interleave.
template <class Self, class F, class Then>
void run_blocking(Self* self, bool serialize, F f, Then then, lane l = lane::lifecycle) {
  using R = decltype(f());
  // Written by the executor thread before its reply, read after: a clean handoff.
  auto slot = std::make_shared<std::optional<R>>();
  blocking_job job{[f, slot] { slot->emplace(f()); }};
  // `done` comes only after the job ran (a job that throws ends its worker: on_error).
  auto on_done = [slot, then](atom::done) mutable { then(std::move(**slot)); };
  auto on_error = [then](caf::error& e) mutable { then(R{from_error(e)}); };
  auto req = self->request(blocking_executor(self->home_system(), l), caf::infinite,
                           atom::run::value, std::move(job));
  if (serialize)
    req.await(on_done, on_error);
  else
    req.then(on_done, on_error);
}

/// A run_blocking continuation answering `rp` with the job's value or its
/// failure.
template <class T>
std::function<void(result<T>)> deliver_to(caf::typed_response_promise<T> rp) {
  return [rp](result<T> r) mutable {
    if (r)
      rp.deliver(std::move(*r));
    else
      rp.deliver(to_error(r.error()));
  };
}

} // namespace sandboxd
