// Webhooks in E2B's shapes: create, list, get, patch, delete, and (beyond
// E2B) their deliveries and redelivery. Configuration lives in the store;
// the dispatcher's actors do the delivering.
#include <sstream>

#include "actors/blocking.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"
#include "webhooks/http_post.hpp"

namespace sandboxd::http {

namespace {

result<std::vector<event_type>> event_types(const json& v) {
  if (!v.is_array())
    return bad_request("events must be an array of event types");
  std::vector<event_type> out;
  for (auto& t : v) {
    auto parsed = t.is_string() ? parse_event_type(t.get<std::string>()) : std::nullopt;
    if (!parsed)
      return bad_request("events has an unknown event type: " + t.dump());
    out.push_back(*parsed);
  }
  return out;
}

// Applies the fields present in `body` to `w`; `creating` requires them.
status apply_fields(webhook& w, const json& body, bool creating) {
  if (creating || body.contains("name")) {
    auto name = nonempty_string_field(body, "name");
    if (!name)
      return name.error();
    w.name = *name;
  }
  if (creating || body.contains("url")) {
    auto url = nonempty_string_field(body, "url");
    if (!url)
      return url.error();
    if (auto ok = webhooks::validate_url(*url); !ok)
      return ok.error();
    w.url = *url;
  }
  if (creating || body.contains("events")) {
    auto types = event_types(body.value("events", json()));
    if (!types)
      return types.error();
    w.events = *types;
  }
  if (creating || body.contains("signatureSecret")) {
    auto secret = nonempty_string_field(body, "signatureSecret");
    if (!secret)
      return secret.error();
    w.secret = *secret;
  }
  if (body.contains("enabled")) {
    if (!body["enabled"].is_boolean())
      return bad_request("enabled must be a boolean");
    w.enabled = body["enabled"].get<bool>();
  }
  return success();
}

// The caller's webhook `:id`, or 404.
result<webhook> own_webhook(api_context& ctx, const request& req) {
  auto w = ctx.db->find_webhook(req.params.at("id"));
  if (!w)
    return w.error();
  if (!*w || (*w)->org_id != req.org)
    return not_found("webhook not found");
  return **w;
}

// The dispatcher owns webhook configuration: it stores `w` and replies.
// With `new_url`, the URL's destination is checked first, on a worker: a
// host name can take the resolver seconds.
template <class Atom>
void ask_dispatcher(api_context& ctx, request& req, int status, Atom verb, const webhook& w,
                    bool new_url) {
  auto out = req.out;
  auto hooks = ctx.webhooks;
  auto allow_private = ctx.allow_private_webhooks;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    auto store = [=] {
      self->request(hooks, caf::infinite, verb, w)
        .then([=](webhook& stored) { out->send_json(status, to_json(stored)); },
              reply_error_to(out));
    };
    if (!new_url)
      return store();
    auto url = w.url;
    run_blocking(
      self, false, [url, allow_private] { return webhooks::check_destination(url, allow_private); },
      [=](sandboxd::status checked) {
        if (!checked)
          return out->send_error(checked.error());
        store();
      },
      lane::long_running); // a DNS lookup may take long
  });
}

} // namespace

void create_webhook(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  webhook w;
  w.id = new_uuid();
  w.org_id = req.org;
  w.created_ms = now_ms();
  if (auto st = apply_fields(w, *body, true); !st)
    return req.out->send_error(st.error());
  ask_dispatcher(ctx, req, 201, atom::create::value, w, true);
}

void list_webhooks(api_context& ctx, request& req) {
  auto found = ctx.db->webhooks(req.org);
  if (!found)
    return req.out->send_error(found.error());
  auto arr = json::array();
  for (auto& w : *found)
    arr.push_back(to_json(w));
  req.out->send_json(200, arr);
}

void get_webhook(api_context& ctx, request& req) {
  auto w = own_webhook(ctx, req);
  if (!w)
    return req.out->send_error(w.error());
  req.out->send_json(200, to_json(*w));
}

void patch_webhook(api_context& ctx, request& req) {
  auto w = own_webhook(ctx, req);
  if (!w)
    return req.out->send_error(w.error());
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  if (auto st = apply_fields(*w, *body, false); !st)
    return req.out->send_error(st.error());
  ask_dispatcher(ctx, req, 200, atom::update::value, *w, body->contains("url"));
}

void delete_webhook(api_context& ctx, request& req) {
  auto w = own_webhook(ctx, req);
  if (!w)
    return req.out->send_error(w.error());
  auto out = req.out;
  auto hooks = ctx.webhooks;
  auto id = w->id;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(hooks, caf::infinite, atom::remove::value, id)
      .then([=](bool) { out->send_empty(204); }, reply_error_to(out));
  });
}

void list_deliveries(api_context& ctx, request& req) {
  auto w = own_webhook(ctx, req);
  if (!w)
    return req.out->send_error(w.error());
  auto limit = int_param(req.query_param("limit"), "limit", 25, 1, 100);
  if (!limit)
    return req.out->send_error(limit.error());
  std::optional<uint64_t> before;
  if (auto c = req.query_param("cursor"); c && !c->empty()) {
    if (c->size() > 16 || c->find_first_not_of("0123456789abcdef") != std::string::npos)
      return req.out->send_error(bad_request("cursor is not one this server issued"));
    before = std::stoull(*c, nullptr, 16);
  }
  auto status = req.query_param("deliveryStatus").value_or("");
  if (!status.empty() && status != "success" && status != "failed")
    return req.out->send_error(bad_request("deliveryStatus must be success or failed"));
  std::optional<event_type> type;
  if (auto t = req.query_param("eventType"); t && !t->empty()) {
    type = parse_event_type(*t);
    if (!type)
      return req.out->send_error(bad_request("unknown eventType: " + *t));
  }
  bool more = false;
  auto found = ctx.db->deliveries(
    w->id, before, static_cast<size_t>(*limit),
    [&](const delivery& d) {
      if (type && d.type != *type)
        return false;
      if (status == "success")
        return d.succeeded();
      // "failed": every attempt so far failed (pending retries included).
      if (status == "failed")
        return !d.succeeded();
      return true;
    },
    &more);
  if (!found)
    return req.out->send_error(found.error());
  auto data = json::array();
  for (auto& d : *found)
    data.push_back(to_json(d));
  json next = nullptr;
  if (more && !found->empty()) {
    std::ostringstream hex;
    hex << std::hex << found->back().seq;
    next = hex.str();
  }
  req.out->send_json(200, {{"data", data}, {"nextCursor", next}});
}

void redeliver(api_context& ctx, request& req) {
  auto w = own_webhook(ctx, req);
  if (!w)
    return req.out->send_error(w.error());
  auto event_id = req.params.at("eventId");
  std::optional<uint64_t> seq;
  auto walked = ctx.db->deliveries(w->id, std::nullopt, 1,
                                   [&](const delivery& d) {
                                     if (d.event_id == event_id)
                                       seq = d.seq;
                                     return d.event_id == event_id;
                                   },
                                   nullptr);
  if (!walked)
    return req.out->send_error(walked.error());
  if (!seq)
    return req.out->send_error(not_found("no delivery of event " + event_id + " to this webhook"));
  caf::anon_send(ctx.webhooks, atom::redeliver::value, w->id, *seq);
  req.out->send_json(202, {{"eventId", event_id}, {"queued", true}});
}

} // namespace sandboxd::http
