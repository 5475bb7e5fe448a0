// Runs blocking work (crun, agent calls, fsync) off the scheduler: each job
// gets a detached actor (its own thread) and its result comes back as a
// message to the caller, in the caller's context.
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"

namespace sandboxd {

/// Calls `f()` (returning result<T>) on a detached actor, then `then(result)`
/// inside `self`. With `serialize`, `self` handles no other message until the
/// result is back: lifecycle transitions never interleave.
template <class Self, class F, class Then>
void run_blocking(Self* self, bool serialize, F f, Then then) {
  using R = decltype(f());
  // Written by the worker before its reply, read after: a clean handoff.
  auto slot = std::make_shared<std::optional<R>>();
  auto worker = self->home_system().template spawn<caf::detached>(
    [f, slot](caf::event_based_actor* w) -> caf::behavior {
      return {[=](atom::run) {
        slot->emplace(f());
        w->quit();
        return atom::done::value;
      }};
    });
  auto on_done = [slot, then](atom::done) mutable { then(std::move(**slot)); };
  auto on_error = [then](caf::error& e) mutable { then(R{from_error(e)}); };
  auto req = self->request(worker, caf::infinite, atom::run::value);
  if (serialize)
    req.await(on_done, on_error);
  else
    req.then(on_done, on_error);
}

} // namespace sandboxd
