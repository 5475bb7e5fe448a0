// The webhook actors: a dispatcher, and one delivery actor per webhook.
//
// Published retry schedule: attempt, then retry after a random delay in
// [d/2, d] with d = 1 s, 2 s, 4 s, ... capped at 1 h; a Retry-After from the
// receiver (seconds, ≤ 1 h) replaces the computed delay. Each attempt has
// 10 s. After 24 h (--webhook-give-up) without a 2xx the delivery is marked failed (it stays
// visible and can be redelivered) and the webhook moves on. One event is in
// flight per webhook at a time, so events arrive in log order.
#pragma once

#include <memory>

#include "actors/interfaces.hpp"

namespace sandboxd {

class store;

struct webhook_config {
  std::shared_ptr<store> db;
  bool allow_private = false; // deliver to non-public addresses too (address_policy.hpp)
  int64_t give_up_after_ms = 24 * 3600 * 1000; // then the delivery is failed
};

webhook_dispatcher_actor spawn_webhook_dispatcher(caf::actor_system& sys, webhook_config cfg);

} // namespace sandboxd
