#include "core/webhook.hpp"

#include <algorithm>

#include "core/clock.hpp"

namespace sandboxd {

using json = nlohmann::json;

bool webhook::wants(event_type t) const {
  return std::find(events.begin(), events.end(), t) != events.end();
}

bool delivery::succeeded() const {
  return std::any_of(attempts.begin(), attempts.end(), [](auto& a) { return a.success; });
}

int64_t delivery::first_attempt_ms() const {
  return attempts.empty() ? 0 : attempts.front().timestamp_ms;
}

json to_json(const webhook& w) {
  auto types = json::array();
  for (auto t : w.events)
    types.push_back(to_string(t));
  return {{"id", w.id},       {"name", w.name},       {"createdAt", to_rfc3339(w.created_ms)},
          {"teamId", w.org_id}, {"url", w.url},       {"enabled", w.enabled},
          {"events", types}};
}

json to_json(const delivery& d) {
  auto attempts = json::array();
  for (auto& a : d.attempts)
    attempts.push_back({{"id", a.id},
                        {"status", a.success ? "success" : "failed"},
                        {"durationMs", a.duration_ms},
                        {"requestUrl", a.request_url},
                        {"responseHttpStatusCode", a.http_status == 0 ? json(nullptr) : json(a.http_status)},
                        {"errorClass", a.error_class.empty() ? json(nullptr) : json(a.error_class)},
                        {"errorMessage", a.error_message.empty() ? json(nullptr) : json(a.error_message)},
                        {"timestamp", to_rfc3339(a.timestamp_ms)}});
  return {{"eventId", d.event_id},
          {"eventType", to_string(d.type)},
          {"sandboxId", d.sandbox_id},
          {"status", d.succeeded() ? "success" : d.gave_up ? "failed" : "pending"},
          {"attempts", attempts}};
}

} // namespace sandboxd
