// Webhooks and their deliveries: what is stored, and the JSON shapes the
// API renders (E2B's where E2B has one).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/event.hpp"
#include "core/inspect.hpp"

namespace sandboxd {

struct webhook {
  std::string id;
  std::string org_id;
  std::string name;
  std::string url;
  std::string secret;
  std::vector<event_type> events;
  bool enabled = true;
  int64_t created_ms = 0;

  bool wants(event_type t) const;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, webhook& x) {
  return f(caf::meta::type_name("webhook"), x.id, x.org_id, x.name, x.url,
           caf::meta::omittable(), x.secret, x.events, x.enabled, x.created_ms);
}

/// One POST of one event to one webhook.
struct delivery_attempt {
  std::string id;           // e2b-delivery-id
  bool success = false;
  int64_t duration_ms = 0;
  std::string request_url;
  int http_status = 0;      // 0 when no response came
  std::string error_class;  // http_error, timeout, transport_error, refused_address
  std::string error_message;
  int64_t timestamp_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, delivery_attempt& x) {
  return f(caf::meta::type_name("delivery_attempt"), x.id, x.success, x.duration_ms,
           x.request_url, x.http_status, x.error_class, x.error_message, x.timestamp_ms);
}

/// Every attempt to deliver one event to one webhook.
struct delivery {
  std::string webhook_id;
  uint64_t seq = 0;
  std::string event_id;
  event_type type = event_type::created;
  std::string sandbox_id;
  std::vector<delivery_attempt> attempts;
  bool gave_up = false;     // retried for 24 h without a 2xx

  bool succeeded() const;
  int64_t first_attempt_ms() const;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, delivery& x) {
  return f(caf::meta::type_name("delivery"), x.webhook_id, x.seq, x.event_id, x.type,
           x.sandbox_id, x.attempts, x.gave_up);
}

/// API shapes: {id, name, createdAt, teamId, url, enabled, events} (no secret)
/// and {eventId, eventType, sandboxId, attempts:[...]}.
nlohmann::json to_json(const webhook& w);
nlohmann::json to_json(const delivery& d);

} // namespace sandboxd
