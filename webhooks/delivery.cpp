#include "webhooks/delivery.hpp"

#include <deque>
#include <map>
#include <random>

#include <spdlog/spdlog.h>

#include "actors/blocking.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "storage/store.hpp"
#include "webhooks/http_post.hpp"
#include "webhooks/signing.hpp"

namespace sandboxd {

namespace {

using namespace std::chrono;

constexpr auto attempt_timeout = seconds(10);
constexpr int64_t max_delay_ms = 3600 * 1000;
constexpr size_t scan_step = 1000; // events looked at per turn

struct delivery_state {
  webhook hook;
  webhook_config cfg;
  uint64_t cursor = 0;
  std::optional<delivery> in_flight;
  std::deque<uint64_t> redeliveries;
  bool busy = false;          // an attempt is out
  bool waiting = false;       // a backoff timer is set
  uint64_t timer_generation = 0;
  std::mt19937_64 rng{std::random_device{}()};
  static inline const char* name = "webhook";
};

using self_ptr = webhook_actor::stateful_pointer<delivery_state>;

int64_t backoff_ms(delivery_state& st, size_t attempts) {
  auto d = int64_t{1000} << std::min<size_t>(attempts - 1, 22);
  d = std::min(d, max_delay_ms);
  return std::uniform_int_distribution<int64_t>{d / 2, d}(st.rng);
}

void advance(self_ptr self);

// POSTs the event at d.seq once and records the attempt.
void attempt(self_ptr self, delivery d, bool redelivery) {
  auto& st = self->state;
  auto e = st.cfg.db->event_at(d.seq);
  if (!e) {
    spdlog::error("webhook {}: event {} unreadable, skipped", st.hook.id, d.seq);
    st.cursor = std::max(st.cursor, d.seq);
    st.cfg.db->set_webhook_cursor(st.hook.id, st.cursor);
    st.in_flight.reset();
    return advance(self);
  }
  st.busy = true;
  auto body = to_json(*e).dump();
  auto attempt_id = new_uuid();
  auto ts = now_ms() / 1000;
  // Stable per event and webhook: receivers use it to drop duplicates.
  auto msg_id = "msg_" + e->id;
  std::vector<std::pair<std::string, std::string>> headers = {
    {"Content-Type", "application/json"},
    {"User-Agent", "sandboxd-webhooks/1"},
    {"e2b-webhook-id", st.hook.id},
    {"e2b-delivery-id", attempt_id},
    {"e2b-signature-version", "v1"},
    {"e2b-signature", webhooks::e2b_signature(st.hook.secret, body)},
    {"webhook-id", msg_id},
    {"webhook-timestamp", std::to_string(ts)},
    {"webhook-signature", webhooks::standard_signature(st.hook.secret, msg_id, ts, body)},
  };
  auto url = st.hook.url;
  auto allow = st.cfg.allow_private;
  auto started = now_ms();
  run_blocking(
    self, false,
    [url, headers, body, allow]() -> result<webhooks::post_result> {
      return webhooks::post(url, headers, body, attempt_timeout, allow);
    },
    [=](result<webhooks::post_result> r) mutable {
      auto& st = self->state;
      st.busy = false;
      delivery_attempt a;
      a.id = attempt_id;
      a.request_url = url;
      a.timestamp_ms = started;
      if (r) {
        a.success = r->ok();
        a.http_status = r->http_status;
        a.duration_ms = r->duration_ms;
        a.error_class = r->error_class;
        a.error_message = r->error_message;
      } else {
        a.error_class = "internal_error";
        a.error_message = r.error().message;
      }
      // Re-read: a redelivery appends to the stored record.
      if (redelivery)
        if (auto stored = st.cfg.db->find_delivery(st.hook.id, d.seq))
          d = *stored;
      d.attempts.push_back(a);
      auto done = a.success || redelivery;
      if (!done && now_ms() - d.first_attempt_ms() >= st.cfg.give_up_after_ms) {
        d.gave_up = true;
        done = true;
        spdlog::warn("webhook {}: giving up on event {} after {} s", st.hook.id, d.event_id,
                     st.cfg.give_up_after_ms / 1000);
      }
      st.cfg.db->put_delivery(d);
      if (redelivery)
        return advance(self);
      if (done) {
        st.cursor = d.seq;
        st.cfg.db->set_webhook_cursor(st.hook.id, st.cursor);
        st.in_flight.reset();
        return advance(self);
      }
      st.in_flight = d;
      auto delay = backoff_ms(st, d.attempts.size());
      if (r && r->retry_after_s)
        delay = std::min(*r->retry_after_s * 1000, max_delay_ms);
      st.waiting = true;
      self->delayed_send(self, milliseconds(delay), atom::retry::value, ++st.timer_generation);
    },
    lane::long_running);
}

// Starts the next attempt if nothing is out: a redelivery first, then the
// event in flight, then the next matching event after the cursor.
void advance(self_ptr self) {
  auto& st = self->state;
  if (st.busy || st.waiting)
    return;
  if (!st.redeliveries.empty()) {
    auto seq = st.redeliveries.front();
    st.redeliveries.pop_front();
    if (auto d = st.cfg.db->find_delivery(st.hook.id, seq))
      return attempt(self, *d, true);
    return advance(self);
  }
  if (st.in_flight)
    return attempt(self, *st.in_flight, false);
  std::optional<event> next;
  uint64_t looked_at = 0, last = st.cursor;
  st.cfg.db->scan(st.cursor + 1, [&](const event& e) {
    last = e.seq;
    if (st.hook.enabled && e.team_id == st.hook.org_id && st.hook.wants(e.type)) {
      next = e;
      return false;
    }
    return ++looked_at < scan_step;
  });
  if (!next) {
    if (last != st.cursor) {
      st.cursor = last;
      st.cfg.db->set_webhook_cursor(st.hook.id, st.cursor);
      if (looked_at >= scan_step)
        self->send(self, atom::wake::value);
    }
    return;
  }
  // A delivery interrupted by a restart resumes with its attempts so far.
  delivery d;
  if (auto stored = st.cfg.db->find_delivery(st.hook.id, next->seq)) {
    d = *stored;
  } else {
    d.webhook_id = st.hook.id;
    d.seq = next->seq;
    d.event_id = next->id;
    d.type = next->type;
    d.sandbox_id = next->sandbox_id;
  }
  st.in_flight = d;
  attempt(self, d, false);
}

webhook_actor::behavior_type delivery_behavior(self_ptr self, webhook hook, webhook_config cfg) {
  self->state.hook = std::move(hook);
  self->state.cfg = std::move(cfg);
  self->state.cursor = self->state.cfg.db->webhook_cursor(self->state.hook.id);
  self->send(self, atom::wake::value);
  return {
    [=](atom::wake) { advance(self); },
    [=](atom::retry, uint64_t generation) {
      if (generation != self->state.timer_generation)
        return;
      self->state.waiting = false;
      advance(self);
    },
    [=](atom::update, webhook& w) {
      self->state.hook = std::move(w);
      advance(self);
    },
    [=](atom::redeliver, uint64_t seq) {
      self->state.redeliveries.push_back(seq);
      advance(self);
    },
  };
}

struct dispatcher_state {
  webhook_config cfg;
  std::map<std::string, webhook_actor> hooks;
  static inline const char* name = "webhook_dispatcher";
};

webhook_dispatcher_actor::behavior_type
dispatcher_behavior(webhook_dispatcher_actor::stateful_pointer<dispatcher_state> self,
                    webhook_config cfg) {
  self->state.cfg = std::move(cfg);
  auto spawn_hook = [=](const webhook& w) {
    self->state.hooks[w.id]
      = self->home_system().spawn(delivery_behavior, w, self->state.cfg);
  };
  for (auto& w : self->state.cfg.db->webhooks())
    spawn_hook(w);
  return {
    [=](atom::wake) {
      for (auto& [id, h] : self->state.hooks)
        self->send(h, atom::wake::value);
    },
    [=](atom::create, webhook& w) -> caf::result<webhook> {
      auto& db = *self->state.cfg.db;
      // Only events from now on: the cursor starts at the log's head.
      if (auto st = db.set_webhook_cursor(w.id, db.head().seq); !st)
        return to_error(st.error());
      if (auto st = db.put_webhook(w); !st)
        return to_error(st.error());
      spawn_hook(w);
      return w;
    },
    [=](atom::update, webhook& w) -> caf::result<webhook> {
      // Deleted while its PATCH was being checked: stays deleted.
      auto i = self->state.hooks.find(w.id);
      if (i == self->state.hooks.end())
        return to_error(not_found("webhook not found"));
      if (auto st = self->state.cfg.db->put_webhook(w); !st)
        return to_error(st.error());
      self->send(i->second, atom::update::value, w);
      return w;
    },
    [=](atom::remove, const std::string& id) -> caf::result<bool> {
      if (auto i = self->state.hooks.find(id); i != self->state.hooks.end()) {
        self->send_exit(i->second, caf::exit_reason::user_shutdown);
        self->state.hooks.erase(i);
      }
      if (auto st = self->state.cfg.db->delete_webhook(id); !st)
        return to_error(st.error());
      return true;
    },
    [=](atom::redeliver, const std::string& id, uint64_t seq) {
      if (auto i = self->state.hooks.find(id); i != self->state.hooks.end())
        self->send(i->second, atom::redeliver::value, seq);
    },
  };
}

} // namespace

webhook_dispatcher_actor spawn_webhook_dispatcher(caf::actor_system& sys, webhook_config cfg) {
  // Detached: its synced writes block its own thread only.
  return sys.spawn<caf::detached>(dispatcher_behavior, std::move(cfg));
}

} // namespace sandboxd
