#include "core/webhook.hpp"

#include <algorithm>

#include "core/bounded_json.hpp"
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

std::string encode(const webhook& w) {
  json j = to_json(w);
  j["secret"] = w.secret;
  j["createdMs"] = w.created_ms;
  return j.dump();
}

std::optional<webhook> decode_webhook(const std::string& text) {
  // Stored records, but their strings came from clients: parse with limits.
  auto parsed = parse_json_bounded(text, {}, "webhook record");
  if (!parsed || !parsed->is_object())
    return std::nullopt;
  auto& j = *parsed;
  try {
    webhook w;
    w.id = j.at("id");
    w.org_id = j.at("teamId");
    w.name = j.at("name");
    w.url = j.at("url");
    w.secret = j.at("secret");
    w.enabled = j.at("enabled");
    w.created_ms = j.at("createdMs");
    for (auto& t : j.at("events"))
      if (auto parsed = parse_event_type(t.get<std::string>()))
        w.events.push_back(*parsed);
    return w;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string encode(const delivery& d) {
  auto attempts = json::array();
  for (auto& a : d.attempts)
    attempts.push_back({{"id", a.id}, {"ok", a.success}, {"ms", a.duration_ms},
                        {"url", a.request_url}, {"http", a.http_status},
                        {"class", a.error_class}, {"msg", a.error_message},
                        {"at", a.timestamp_ms}});
  return json{{"webhook", d.webhook_id}, {"seq", d.seq},      {"event", d.event_id},
              {"type", static_cast<int>(d.type)}, {"sandbox", d.sandbox_id},
              {"gaveUp", d.gave_up},   {"attempts", attempts}}
    .dump();
}

std::optional<delivery> decode_delivery(const std::string& text) {
  auto parsed = parse_json_bounded(text, {}, "delivery record");
  if (!parsed || !parsed->is_object())
    return std::nullopt;
  auto& j = *parsed;
  try {
    delivery d;
    d.webhook_id = j.at("webhook");
    d.seq = j.at("seq");
    d.event_id = j.at("event");
    d.type = static_cast<event_type>(j.at("type").get<int>());
    d.sandbox_id = j.at("sandbox");
    d.gave_up = j.at("gaveUp");
    for (auto& a : j.at("attempts"))
      d.attempts.push_back({a.at("id"), a.at("ok"), a.at("ms"), a.at("url"), a.at("http"),
                            a.at("class"), a.at("msg"), a.at("at")});
    return d;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

} // namespace sandboxd
