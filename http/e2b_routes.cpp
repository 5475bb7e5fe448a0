// The E2B control plane: create, list, get, kill, pause, connect/resume,
// timeout and refresh. Each handler validates, sends one typed message and
// renders the reply; no handler holds state.
#include <set>

#include "core/result.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/e2b_json.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

constexpr int64_t max_timeout_s = 24 * 3600;

} // namespace

void create_sandbox(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto tpl = string_field(*body, "templateID");
  if (!tpl)
    return req.out->send_error(tpl.error());
  if (tpl->empty())
    return req.out->send_error(bad_request("templateID must not be empty"));
  auto timeout = int_field(*body, "timeout", 300, 0, max_timeout_s);
  if (!timeout)
    return req.out->send_error(timeout.error());
  auto metadata = string_map_field(*body, "metadata");
  if (!metadata)
    return req.out->send_error(metadata.error());
  auto env = string_map_field(*body, "envVars");
  if (!env)
    return req.out->send_error(env.error());
  for (auto& [k, v] : *env)
    if (k.empty() || k.find('=') != std::string::npos
        || k.find('\0') != std::string::npos)
      return req.out->send_error(
        bad_request("envVars has an invalid name: '" + k + "'"));
  create_spec spec{req.org, *tpl, *timeout, std::move(*metadata),
                   std::move(*env)};
  auto out = req.out;
  auto secret = ctx.db->secret();
  auto reg = ctx.registry;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::create::value, spec)
      .then(
        [=](sandbox_record& rec) { out->send_json(201, sandbox_json(rec, secret)); },
        reply_error_to(out));
  });
}

void list_sandboxes(api_context& ctx, request& req) {
  std::set<sandbox_state> wanted;
  auto raw = req.query_param("status");
  if (!raw)
    raw = req.query_param("state");
  if (raw && !raw->empty()) {
    size_t start = 0;
    while (start <= raw->size()) {
      auto end = raw->find(',', start);
      auto item = raw->substr(start, end == std::string::npos ? std::string::npos
                                                              : end - start);
      auto st = parse_sandbox_state(item);
      if (!st)
        return req.out->send_error(bad_request(
          "unknown status '" + item
          + "' (expected running, paused, stopped, creating or error)"));
      wanted.insert(*st);
      if (end == std::string::npos)
        break;
      start = end + 1;
    }
  } else {
    wanted = {sandbox_state::running, sandbox_state::paused};
  }
  auto out = req.out;
  auto secret = ctx.db->secret();
  auto reg = ctx.registry;
  auto org = req.org;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::list::value, org)
      .then(
        [=](std::vector<sandbox_record>& recs) {
          auto arr = json::array();
          for (auto& r : recs)
            if (wanted.count(r.state))
              arr.push_back(sandbox_json(r, secret));
          out->send_json(200, arr);
        },
        reply_error_to(out));
  });
}

void get_sandbox(api_context& ctx, request& req) {
  auto out = req.out;
  auto secret = ctx.db->secret();
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::get::value)
      .then([=](sandbox_record& rec) { out->send_json(200, sandbox_json(rec, secret)); },
            reply_error_to(out));
  });
}

void kill_sandbox(api_context& ctx, request& req) {
  auto out = req.out;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::kill::value, kill_reason::request)
      .then([=](sandbox_record&) { out->send_empty(204); }, reply_error_to(out));
  });
}

void pause_sandbox(api_context& ctx, request& req) {
  auto out = req.out;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::pause::value)
      .then([=](sandbox_record&) { out->send_empty(204); }, reply_error_to(out));
  });
}

// connect, v2 connect and the deprecated resume: 200 if it was running,
// 201 if it had to be resumed.
void connect_sandbox(api_context& ctx, request& req) {
  auto body = parse_object(req.body, true);
  if (!body)
    return req.out->send_error(body.error());
  auto timeout = int_field(*body, "timeout", 300, 0, max_timeout_s);
  if (!timeout)
    return req.out->send_error(timeout.error());
  auto out = req.out;
  auto secret = ctx.db->secret();
  auto t = *timeout;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::connect::value, t)
      .then(
        [=](connect_result& r) {
          out->send_json(r.resumed ? 201 : 200, sandbox_json(r.sandbox, secret));
        },
        reply_error_to(out));
  });
}

namespace {

void set_timeout(api_context& ctx, request& req, const char* field,
                 std::optional<int64_t> fallback) {
  auto body = parse_object(req.body, fallback.has_value());
  if (!body)
    return req.out->send_error(body.error());
  auto timeout = int_field(*body, field, fallback, 0, max_timeout_s);
  if (!timeout)
    return req.out->send_error(timeout.error());
  auto out = req.out;
  auto t = *timeout;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::timeout::value, t)
      .then([=](sandbox_record&) { out->send_empty(204); }, reply_error_to(out));
  });
}

} // namespace

void timeout_sandbox(api_context& ctx, request& req) {
  set_timeout(ctx, req, "timeout", std::nullopt);
}

// E2B: extends the time to live by `duration` seconds from now (0–3600).
void refresh_sandbox(api_context& ctx, request& req) {
  auto body = parse_object(req.body, true);
  if (!body)
    return req.out->send_error(body.error());
  auto d = int_field(*body, "duration", 60, 0, 3600);
  if (!d)
    return req.out->send_error(d.error());
  set_timeout(ctx, req, "duration", 60);
}

} // namespace sandboxd::http
