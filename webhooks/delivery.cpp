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
  bool busy = false;          // a scan or an attempt is out on the executor
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

// Every read and (synced) write of the store happens in the jobs below, on
// the executor: a scheduler thread never waits for the disk.

// What a scan after the cursor found: the next event to deliver (with the
// attempts a restart interrupted), or how far the cursor moved without one.
struct next_found {
  std::optional<delivery> next;
  uint64_t cursor = 0;
  bool more = false; // stopped after scan_step events: look again
};

result<next_found> find_next(store& db, const webhook& hook, uint64_t cursor) {
  next_found out;
  out.cursor = cursor;
  std::optional<event> next;
  uint64_t looked_at = 0;
  auto scanned = db.scan(cursor + 1, [&](const event& e) {
    out.cursor = e.seq;
    if (hook.enabled && e.team_id == hook.org_id && hook.wants(e.type)) {
      next = e;
      return false;
    }
    return ++looked_at < scan_step;
  });
  if (!scanned)
    return scanned.error();
  if (next) {
    auto stored = db.find_delivery(hook.id, next->seq);
    if (!stored)
      return stored.error();
    if (*stored) {
      out.next = **stored;
    } else {
      out.next.emplace();
      out.next->webhook_id = hook.id;
      out.next->seq = next->seq;
      out.next->event_id = next->id;
      out.next->type = next->type;
      out.next->sandbox_id = next->sandbox_id;
    }
    out.cursor = cursor; // moves when the event is done
    return out;
  }
  out.more = looked_at >= scan_step;
  if (out.cursor != cursor)
    if (auto st = db.set_webhook_cursor(hook.id, out.cursor); !st)
      return st.error();
  return out;
}

// One attempt: the delivery after it, whether the event is done with, and
// the receiver's Retry-After.
struct attempt_outcome {
  delivery d;
  bool done = false;
  bool skipped = false; // nothing to send (a redelivery of nothing, an unreadable event)
  std::optional<int64_t> retry_after_s;
};

// POSTs the event at d.seq once, stores the attempt, and the cursor when
// the event is done (a redelivery never moves it).
result<attempt_outcome> post_and_record(const webhook& hook, const webhook_config& cfg,
                                        delivery d, bool redelivery, uint64_t cursor) {
  auto& db = *cfg.db;
  attempt_outcome out;
  auto read = db.event_at(d.seq);
  if (!read)
    return read.error(); // tried again: unreadable now is not gone
  auto& e = *read;
  if (!e) {
    spdlog::error("webhook {}: event {} unreadable, skipped", hook.id, d.seq);
    out.skipped = true;
    out.d = d;
    if (!redelivery)
      if (auto st = db.set_webhook_cursor(hook.id, std::max(cursor, d.seq)); !st)
        return st.error();
    return out;
  }
  auto body = to_json(*e).dump();
  auto attempt_id = new_uuid();
  auto ts = now_ms() / 1000;
  // Stable per event and webhook: receivers use it to drop duplicates.
  auto msg_id = "msg_" + e->id;
  std::vector<std::pair<std::string, std::string>> headers = {
    {"Content-Type", "application/json"},
    {"User-Agent", "sandboxd-webhooks/1"},
    {"e2b-webhook-id", hook.id},
    {"e2b-delivery-id", attempt_id},
    {"e2b-signature-version", "v1"},
    {"e2b-signature", webhooks::e2b_signature(hook.secret, body)},
    {"webhook-id", msg_id},
    {"webhook-timestamp", std::to_string(ts)},
    {"webhook-signature", webhooks::standard_signature(hook.secret, msg_id, ts, body)},
  };
  auto started = now_ms();
  auto r = webhooks::post(hook.url, headers, body, attempt_timeout, cfg.allow_private);
  delivery_attempt a;
  a.id = attempt_id;
  a.request_url = hook.url;
  a.timestamp_ms = started;
  a.success = r.ok();
  a.http_status = r.http_status;
  a.duration_ms = r.duration_ms;
  a.error_class = r.error_class;
  a.error_message = r.error_message;
  out.retry_after_s = r.retry_after_s;
  // Re-read: a redelivery appends to the stored record.
  if (redelivery) {
    auto stored = db.find_delivery(hook.id, d.seq);
    if (!stored)
      return stored.error();
    if (*stored)
      d = **stored;
  }
  d.attempts.push_back(a);
  out.done = a.success || redelivery;
  if (!out.done && now_ms() - d.first_attempt_ms() >= cfg.give_up_after_ms) {
    d.gave_up = true;
    out.done = true;
    spdlog::warn("webhook {}: giving up on event {} after {} s", hook.id, d.event_id,
                 cfg.give_up_after_ms / 1000);
  }
  if (auto st = db.put_delivery(d); !st)
    return st.error();
  if (out.done && !redelivery)
    if (auto st = db.set_webhook_cursor(hook.id, d.seq); !st)
      return st.error();
  out.d = std::move(d);
  return out;
}

void advance(self_ptr self);

// A store that failed: the work is tried again later, never dropped (a
// receiver may then see an event twice: webhook-id lets it drop the copy).
void retry_later(self_ptr self, const failure& f) {
  auto& st = self->state;
  spdlog::error("webhook {}: {}; trying again in 5 s", st.hook.id, f.message);
  st.waiting = true;
  self->delayed_send(self, seconds(5), atom::retry::value, ++st.timer_generation);
}

void attempt(self_ptr self, delivery d, bool redelivery) {
  auto& st = self->state;
  st.busy = true;
  run_blocking(
    self, false,
    [hook = st.hook, cfg = st.cfg, d, redelivery, cursor = st.cursor] {
      return post_and_record(hook, cfg, d, redelivery, cursor);
    },
    [=](result<attempt_outcome> r) {
      auto& st = self->state;
      st.busy = false;
      if (!r) {
        if (redelivery) // asked again, it is tried again
          st.redeliveries.push_front(d.seq);
        return retry_later(self, r.error());
      }
      if (redelivery)
        return advance(self);
      if (r->done || r->skipped) {
        st.cursor = std::max(st.cursor, r->d.seq);
        st.in_flight.reset();
        return advance(self);
      }
      st.in_flight = r->d;
      auto delay = backoff_ms(st, r->d.attempts.size());
      if (r->retry_after_s)
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
    delivery d;
    d.webhook_id = st.hook.id;
    d.seq = seq;
    return attempt(self, d, true);
  }
  if (st.in_flight)
    return attempt(self, *st.in_flight, false);
  st.busy = true;
  run_blocking(
    self, false, [hook = st.hook, db = st.cfg.db, cursor = st.cursor] {
      return find_next(*db, hook, cursor);
    },
    [=](result<next_found> r) {
      auto& st = self->state;
      st.busy = false;
      if (!r)
        return retry_later(self, r.error());
      st.cursor = r->cursor;
      if (r->next) {
        st.in_flight = r->next;
        return attempt(self, *r->next, false);
      }
      // A redelivery asked for during the scan goes now.
      if (!st.redeliveries.empty())
        return advance(self);
      if (r->more)
        self->send(self, atom::wake::value);
    },
    lane::long_running);
}

webhook_actor::behavior_type delivery_behavior(self_ptr self, webhook hook, webhook_config cfg,
                                               uint64_t cursor) {
  self->state.hook = std::move(hook);
  self->state.cfg = std::move(cfg);
  self->state.cursor = cursor;
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
  // The dispatcher is detached: its reads and writes block its own thread.
  auto spawn_hook = [=](const webhook& w, uint64_t cursor) {
    self->state.hooks[w.id] =
      self->home_system().spawn(delivery_behavior, w, self->state.cfg, cursor);
  };
  // Webhooks that cannot be listed stay idle until the server restarts, as
  // one whose cursor cannot be read does.
  auto stored = self->state.cfg.db->webhooks();
  if (!stored)
    spdlog::error("webhooks: none delivering: {}", stored.error().message);
  else
    for (auto& w : *stored) {
      // From 0 would send every event again: a webhook whose cursor cannot
      // be read stays idle (and says so) until the server restarts.
      if (auto cursor = self->state.cfg.db->webhook_cursor(w.id))
        spawn_hook(w, *cursor);
      else
        spdlog::error("webhook {}: not delivering: {}", w.id, cursor.error().message);
    }
  return {
    [=](atom::wake) {
      for (auto& [id, h] : self->state.hooks)
        self->send(h, atom::wake::value);
    },
    [=](atom::create, webhook& w) -> caf::result<webhook> {
      auto& db = *self->state.cfg.db;
      // Only events from now on: the cursor starts at the log's head.
      auto head = db.head().seq;
      if (auto st = db.set_webhook_cursor(w.id, head); !st)
        return to_error(st.error());
      if (auto st = db.put_webhook(w); !st)
        return to_error(st.error());
      spawn_hook(w, head);
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
