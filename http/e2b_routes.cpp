// The E2B control plane: create, list, get, kill, pause, connect/resume,
// timeout and refresh. Each handler validates, sends one typed message and
// renders the reply; no handler holds state.
#include <algorithm>
#include <limits>
#include <set>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/e2b_json.hpp"
#include "http/routes.hpp"
#include "runtime/network.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

constexpr int64_t max_timeout_s = 24 * 3600;

} // namespace

namespace {

result<std::vector<std::string>> string_list(const json& obj, const std::string& name) {
  std::vector<std::string> out;
  auto i = obj.find(name);
  if (i == obj.end() || i->is_null())
    return out;
  if (!i->is_array())
    return bad_request(name + " must be an array of strings");
  for (auto& x : *i) {
    if (!x.is_string())
      return bad_request(name + " must be an array of strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

// E2B's egress settings: `allow_internet_access` (the SDK's spelling) or
// `allowInternetAccess`, and allowOut/denyOut found in `rules` (the create's
// `network` object, or the PUT body itself). Features this server has no
// proxy for are refused rather than silently ignored.
result<network_view> parse_network(const json& top, const json& rules) {
  network_view n;
  for (auto name : {"allow_internet_access", "allowInternetAccess"}) {
    auto v = bool_field(top, name, true);
    if (!v)
      return v.error();
    if (top.contains(name) && !top[name].is_null()) {
      n.internet = *v;
      n.internet_set = true;
    }
  }
  if (!rules.is_object())
    return bad_request("network must be an object");
  auto allow = string_list(rules, "allowOut");
  if (!allow)
    return allow.error();
  auto deny = string_list(rules, "denyOut");
  if (!deny)
    return deny.error();
  n.allow_out = std::move(*allow);
  n.deny_out = std::move(*deny);
  // Ingress to the sandbox's ports (create only; a PUT leaves them as they are).
  auto open = bool_field(rules, "allowPublicTraffic", true);
  if (!open)
    return open.error();
  n.public_traffic = *open;
  if (auto mask = rules.find("maskRequestHost"); mask != rules.end() && !mask->is_null()) {
    if (!mask->is_string() || mask->get<std::string>().size() > 255
        || mask->get<std::string>().find_first_of("\r\n\t ") != std::string::npos)
      return bad_request("network.maskRequestHost must be a host name of at most 255 characters"
                         " (\"${PORT}\" stands for the port)");
    n.mask_request_host = mask->get<std::string>();
  }
  if (auto r = rules.find("rules"); r != rules.end()) {
    auto parsed = parse_egress_rules(*r);
    if (!parsed)
      return parsed.error();
    n.rules = std::move(*parsed);
  }
  if (auto v = rules.find("egressProxy"); v != rules.end() && !v->is_null() && !v->empty())
    return bad_request("network.egressProxy is not supported by this server (no SOCKS5 tunnel)");
  if (auto v = rules.find("httpsPorts"); v != rules.end() && !v->is_null() && !v->empty())
    return bad_request("network.httpsPorts is not supported by this server (its port proxy"
                       " reaches sandbox ports over plain HTTP)");
  if (auto st = validate(network_policy{n.internet, n.allow_out, n.deny_out}); !st)
    return st.error();
  return n;
}

// Every secret a rule's placeholder names exists in the org now (400
// otherwise); one deleted later fails the requests that need it (502).
status check_rule_secrets(api_context& ctx, const std::string& org, const network_view& n) {
  for (auto& name : rule_secret_names(n.rules)) {
    auto found = ctx.db->find_secret(org, name);
    if (!found)
      return found.error();
    if (!*found)
      return bad_request("network.rules: secret '" + name + "' does not exist");
  }
  return success();
}

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
  auto network = parse_network(*body, body->value("network", json::object()).is_null()
                                         ? json::object()
                                         : body->value("network", json::object()));
  if (!network)
    return req.out->send_error(network.error());
  if (auto st = check_rule_secrets(ctx, req.org, *network); !st)
    return req.out->send_error(st.error());
  auto volumes = parse_volume_mounts(*body);
  if (!volumes)
    return req.out->send_error(volumes.error());
  create_spec spec;
  spec.volumes = std::move(*volumes);
  spec.org_id = req.org;
  spec.template_id = *tpl;
  spec.network = std::move(*network);
  spec.timeout_s = *timeout;
  spec.metadata = std::move(*metadata);
  spec.env_vars = std::move(*env);
  spec.auto_pause = *auto_pause;
  spec.auto_pause_memory = *keep_memory;
  spec.auto_resume = auto_resume;
  auto out = req.out;
  auto keys = json_keys(ctx);
  auto reg = ctx.registry;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::create::value, spec)
      .then(
        [=](sandbox_record& rec) { out->send_json(201, sandbox_json(rec, keys)); },
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

// The page cursor: the sort key (start time, id) of the last item served,
// so pages stay stable while sandboxes come and go.
std::string cursor_of(int64_t started_at_ms, const std::string& id) {
  return std::to_string(started_at_ms) + "_" + id;
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
  auto keys = json_keys(ctx);
  // Live sandboxes come from the listing index; only a query for ended ones
  // walks the history.
  bool history = std::any_of(wanted.begin(), wanted.end(), [](sandbox_state st) {
    return st != sandbox_state::running && st != sandbox_state::paused;
  });
  auto org = req.org;
  auto reg = ctx.registry;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    if (!history) {
      // The whole live listing, newest first, as the registry keeps it rendered.
      list_query q;
      q.org = org;
      q.states = wanted;
      q.metadata = md;
      q.limit = std::numeric_limits<size_t>::max();
      self->request(reg, caf::infinite, atom::list::value, q, atom::render::value)
        .then([=](rendered_page& page) { out->send_json_text(200, page.json); },
              reply_error_to(out));
      return;
    }
    self->request(reg, caf::infinite, atom::list::value, org, atom::history::value)
      .then(
        [=](std::vector<sandbox_record>& recs) {
          auto arr = json::array();
          for (auto& r : recs)
            if (wanted.count(r.state) && metadata_matches(r, md))
              arr.push_back(sandbox_json(r, keys));
          out->send_json(200, arr);
        },
        reply_error_to(out));
  });
}


// GET /v2/sandboxes: filters, ordering and a stable cursor (X-Next-Token),
// one page at a time from the registry's index of live sandboxes.
void list_sandboxes_v2(api_context& ctx, request& req) {
  auto states = state_filter(req.query_param("state"),
                             {sandbox_state::running, sandbox_state::paused});
  if (!states)
    return req.out->send_error(states.error());
  for (auto st : *states)
    if (st != sandbox_state::running && st != sandbox_state::paused)
      return req.out->send_error(bad_request("state must be running, paused or both"));
  auto limit = int_param(req.query_param("limit"), "limit", 100, 1, 100);
  if (!limit)
    return req.out->send_error(limit.error());
  auto order = req.query_param("order").value_or("desc");
  if (order != "asc" && order != "desc")
    return req.out->send_error(bad_request("order must be asc or desc"));
  list_query q;
  q.org = req.org;
  q.states = *states;
  q.limit = static_cast<size_t>(*limit);
  q.ascending = order == "asc";
  if (auto s = req.query_param("startedAfter"); s && !s->empty()) {
    q.started_after_ms = parse_rfc3339(*s);
    if (!q.started_after_ms)
      return req.out->send_error(bad_request("startedAfter must be an RFC 3339 timestamp"));
  }
  q.template_id = req.query_param("template").value_or("");
  q.metadata = parse_metadata_filter(req.query_param("metadata").value_or(""));
  if (auto token = req.query_param("nextToken"); token && !token->empty()) {
    auto sep = token->find('_');
    char* end = nullptr;
    auto started = std::strtoll(token->c_str(), &end, 10);
    if (sep == std::string::npos || end != token->c_str() + sep || sep + 1 >= token->size())
      return req.out->send_error(bad_request("nextToken is not a token this server gave out"));
    q.after = std::make_pair(static_cast<int64_t>(started), token->substr(sep + 1));
  }
  auto out = req.out;
  auto reg = ctx.registry;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::list::value, q, atom::render::value)
      .then(
        [=](rendered_page& page) {
          std::map<std::string, std::string> headers{
            {"X-Total-Running", std::to_string(page.total_running)}};
          if (page.more && page.last)
            headers["X-Next-Token"] = cursor_of(page.last->first, page.last->second);
          out->send_json_text(200, page.json, headers);
        },
        reply_error_to(out));
  });
}

void get_sandbox(api_context& ctx, request& req) {
  auto out = req.out;
  auto keys = json_keys(ctx);
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::get::value)
      .then([=](sandbox_record& rec) { out->send_json(200, sandbox_json(rec, keys)); },
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

// POST /sandboxes/:id/pause {memory=true}: memory false frees the memory,
// keeping the files; resuming then boots the sandbox fresh on them.
void pause_sandbox(api_context& ctx, request& req) {
  auto body = parse_object(req.body, true);
  if (!body)
    return req.out->send_error(body.error());
  auto memory = bool_field(*body, "memory", true);
  if (!memory)
    return req.out->send_error(memory.error());
  auto out = req.out;
  auto keep = *memory;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::pause::value, keep)
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
  auto keys = json_keys(ctx);
  auto t = *timeout;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::connect::value, t)
      .then(
        [=](connect_result& r) {
          out->send_json(r.resumed ? 201 : 200, sandbox_json(r.sandbox, keys));
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

// PUT /sandboxes/:id/network: replaces the whole egress policy (omitted
// fields are cleared), live: open connections that the new rules refuse
// are cut too.
void update_network(api_context& ctx, request& req) {
  auto body = parse_object(req.body, true);
  if (!body)
    return req.out->send_error(body.error());
  auto n = parse_network(*body, *body);
  if (!n)
    return req.out->send_error(n.error());
  if (auto st = check_rule_secrets(ctx, req.org, *n); !st)
    return req.out->send_error(st.error());
  auto out = req.out;
  auto policy = *n;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::network::value, policy)
      .then([=](sandbox_record&) { out->send_empty(204); }, reply_error_to(out));
  });
}

} // namespace sandboxd::http
