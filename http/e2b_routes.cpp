// The E2B control plane: create, list, get, kill, pause, connect/resume,
// timeout and refresh. Each handler validates, sends one typed message and
// renders the reply; no handler holds state.
#include <set>

#include "core/clock.hpp"
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
  auto tpl = nonempty_string_field(*body, "templateID");
  if (!tpl)
    return req.out->send_error(tpl.error());
  auto timeout = int_field(*body, "timeout", 300, 0, max_timeout_s);
  if (!timeout)
    return req.out->send_error(timeout.error());
  auto metadata = string_map_field(*body, "metadata");
  if (!metadata)
    return req.out->send_error(metadata.error());
  auto env = env_field(*body, "envVars");
  if (!env)
    return req.out->send_error(env.error());
  auto auto_pause = bool_field(*body, "autoPause", false);
  if (!auto_pause)
    return req.out->send_error(auto_pause.error());
  auto keep_memory = bool_field(*body, "autoPauseMemory", true);
  if (!keep_memory)
    return req.out->send_error(keep_memory.error());
  bool auto_resume = false;
  if (auto ar = body->find("autoResume"); ar != body->end() && !ar->is_null()) {
    if (!ar->is_object())
      return req.out->send_error(bad_request("autoResume must be an object {enabled}"));
    auto enabled = bool_field(*ar, "enabled", false);
    if (!enabled)
      return req.out->send_error(bad_request("autoResume.enabled must be true or false"));
    auto_resume = *enabled;
  }
  if (auto_resume && !*auto_pause)
    return req.out->send_error(bad_request("autoResume needs autoPause: only a sandbox paused on timeout can resume on use"));
  if (auto_resume && !*keep_memory)
    return req.out->send_error(bad_request("autoResume cannot be combined with autoPauseMemory false: a sandbox paused without its memory is resumed explicitly"));
  create_spec spec;
  spec.org_id = req.org;
  spec.template_id = *tpl;
  spec.timeout_s = *timeout;
  spec.metadata = std::move(*metadata);
  spec.env_vars = std::move(*env);
  spec.auto_pause = *auto_pause;
  spec.auto_pause_memory = *keep_memory;
  spec.auto_resume = auto_resume;
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

namespace {

// The states named by a comma list ("running,paused"); `fallback` if absent.
result<std::set<sandbox_state>> state_filter(const std::optional<std::string>& raw,
                                             std::set<sandbox_state> fallback) {
  if (!raw || raw->empty())
    return fallback;
  std::set<sandbox_state> wanted;
  size_t start = 0;
  for (;;) {
    auto end = raw->find(',', start);
    auto item = raw->substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto st = parse_sandbox_state(item);
    if (!st)
      return bad_request("unknown state '" + item
                         + "' (expected running, paused, stopped, creating or error)");
    wanted.insert(*st);
    if (end == std::string::npos)
      return wanted;
    start = end + 1;
  }
}

bool metadata_matches(const sandbox_record& rec, const std::map<std::string, std::string>& want) {
  for (auto& [k, v] : want) {
    auto i = rec.metadata.find(k);
    if (i == rec.metadata.end() || i->second != v)
      return false;
  }
  return true;
}

// The page cursor: the sort key (start time, id) of the last item served,
// so pages stay stable while sandboxes come and go.
std::string cursor_of(const sandbox_record& r) {
  return std::to_string(r.started_at_ms) + "_" + r.id;
}

} // namespace

void list_sandboxes(api_context& ctx, request& req) {
  auto raw = req.query_param("status");
  if (!raw)
    raw = req.query_param("state");
  auto states = state_filter(raw, {sandbox_state::running, sandbox_state::paused});
  if (!states)
    return req.out->send_error(states.error());
  auto wanted = *states;
  // The deprecated metadata filter of GET /sandboxes.
  auto md = parse_metadata_filter(req.query_param("metadata").value_or(""));
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
            if (wanted.count(r.state) && metadata_matches(r, md))
              arr.push_back(sandbox_json(r, secret));
          out->send_json(200, arr);
        },
        reply_error_to(out));
  });
}


// GET /v2/sandboxes: filters, ordering and a stable cursor (X-Next-Token).
void list_sandboxes_v2(api_context& ctx, request& req) {
  auto states = state_filter(req.query_param("state"),
                             {sandbox_state::running, sandbox_state::paused});
  if (!states)
    return req.out->send_error(states.error());
  auto limit = int_param(req.query_param("limit"), "limit", 100, 1, 100);
  if (!limit)
    return req.out->send_error(limit.error());
  auto order = req.query_param("order").value_or("desc");
  if (order != "asc" && order != "desc")
    return req.out->send_error(bad_request("order must be asc or desc"));
  std::optional<int64_t> after;
  if (auto s = req.query_param("startedAfter"); s && !s->empty()) {
    after = parse_rfc3339(*s);
    if (!after)
      return req.out->send_error(bad_request("startedAfter must be an RFC 3339 timestamp"));
  }
  auto tpl = req.query_param("template").value_or("");
  auto md = parse_metadata_filter(req.query_param("metadata").value_or(""));
  auto token = req.query_param("nextToken").value_or("");
  auto out = req.out;
  auto secret = ctx.db->secret();
  auto reg = ctx.registry;
  auto org = req.org;
  auto wanted = *states;
  auto n = static_cast<size_t>(*limit);
  bool asc = order == "asc";
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::list::value, org)
      .then(
        [=](std::vector<sandbox_record>& recs) {
          size_t running = 0;
          for (auto& r : recs)
            running += r.state == sandbox_state::running;
          auto key_less = [](const sandbox_record& a, const sandbox_record& b) {
            return std::make_pair(a.started_at_ms, a.id) < std::make_pair(b.started_at_ms, b.id);
          };
          std::sort(recs.begin(), recs.end(), [&](auto& a, auto& b) {
            return asc ? key_less(a, b) : key_less(b, a);
          });
          std::optional<sandbox_record> resume_after;
          if (auto sep = token.find('_'); !token.empty() && sep != std::string::npos) {
            resume_after.emplace();
            resume_after->started_at_ms = std::atoll(token.substr(0, sep).c_str());
            resume_after->id = token.substr(sep + 1);
          }
          auto arr = json::array();
          const sandbox_record* last = nullptr;
          bool more = false;
          for (auto& r : recs) {
            if (!wanted.count(r.state) || (!tpl.empty() && r.template_id != tpl)
                || (after && r.started_at_ms <= *after) || !metadata_matches(r, md))
              continue;
            if (resume_after
                && !(asc ? key_less(*resume_after, r) : key_less(r, *resume_after)))
              continue;
            if (arr.size() == n) {
              more = true;
              break;
            }
            arr.push_back(sandbox_json(r, secret));
            last = &r;
          }
          auto next = more && last ? cursor_of(*last) : std::string{};
          json body = arr;
          std::map<std::string, std::string> headers{
            {"X-Total-Running", std::to_string(running)}};
          if (!next.empty())
            headers["X-Next-Token"] = next;
          out->send_json_with_headers(200, body, headers);
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
