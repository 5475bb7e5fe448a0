// The e2a dialect (/v1/sandboxes): a translation onto the same registry,
// sandbox actors, event log and webhooks as the E2B API. Differences kept
// here: Bearer auth, `vm_id`, capacity as 409, templates by e2a name, and
// one-shot agents from the agent catalogue (ops/agents.json).
#include <set>

#include "actors/agent_frame_json.hpp"
#include "core/clock.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "runtime/agent_catalog.hpp"
#include "runtime/templates.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

constexpr int64_t max_lifetime_cap_s = 7200;

// The template names e2a defines; each is a name or alias in our catalogue
// (ops/templates.json), where `standard` is an alias of `base`.
const std::set<std::string> e2a_template_names = {"standard", "browser", "cua", "canvas"};

// Variables a sandbox's env_vars may not set: the basics every process
// relies on, our own, and every agent's key variable.
bool reserved_env(const api_context& ctx, const std::string& k) {
  static const std::set<std::string> names = {"PATH", "HOME"};
  if (names.count(k) || k.rfind("SANDBOXD_", 0) == 0 || k.rfind("E2B_", 0) == 0)
    return true;
  for (auto& key_env : ctx.agents->key_envs())
    if (k == key_env)
      return true;
  return false;
}

json summary(const sandbox_record& r) {
  return {{"vm_id", r.id},
          {"state", to_string(r.state)},
          {"vcpu", r.cpu_count},
          {"cpu_fraction", 1.0},
          {"memory_mib", r.memory_mb},
          {"metadata", r.metadata}};
}

// e2a answers capacity with 409 where E2B answers 429.
auto e2a_error(std::shared_ptr<responder> out) {
  return [out](caf::error& e) {
    auto f = from_error(e);
    if (f.status == 429)
      f.status = 409;
    out->send_error(f);
  };
}

} // namespace

void e2a_create(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto tpl = nonempty_string_field(*body, "template");
  if (!tpl)
    return req.out->send_error(tpl.error());
  for (auto field : {"agent", "llm_key", "task", "model"})
    if (body->contains(field) && !(*body)[field].is_null() && !(*body)[field].is_string())
      return req.out->send_error(bad_request(std::string{field} + " must be a string"));
  auto text = [&](const char* field) {
    return body->value(field, json()).is_string() ? (*body)[field].get<std::string>() : "";
  };
  auto agent = text("agent"), key = text("llm_key"), model = text("model"), task = text("task");
  if (!agent.empty() && key.empty())
    return req.out->send_error(bad_request("llm_key is required when an agent is given"));
  if (agent.empty() && (!key.empty() || !model.empty() || !task.empty()))
    return req.out->send_error(bad_request("llm_key, model and task need an agent"));
  auto idle = int_field(*body, "idle_timeout_seconds", 60, 1, max_lifetime_cap_s);
  if (!idle)
    return req.out->send_error(idle.error());
  auto life = int_field(*body, "max_lifetime_seconds", max_lifetime_cap_s, 1, max_lifetime_cap_s);
  if (!life)
    return req.out->send_error(life.error());
  auto env = env_field(*body, "env_vars");
  if (!env)
    return req.out->send_error(env.error());
  for (auto& [k, v] : *env)
    if (reserved_env(ctx, k))
      return req.out->send_error(bad_request("env_vars may not set " + k + " (reserved)"));
  auto metadata = string_map_field(*body, "metadata");
  if (!metadata)
    return req.out->send_error(metadata.error());
  if (!e2a_template_names.count(*tpl))
    return req.out->send_error({501, "unknown template: " + *tpl});
  std::string catalogue_name = *tpl;
  create_spec spec;
  if (!agent.empty()) {
    auto a = ctx.agents->find(agent);
    if (!a)
      return req.out->send_error(a.error());
    if (auto st = agent_catalog::check_model(*a, model); !st)
      return req.out->send_error(st.error());
    if (a->command.empty())
      return req.out->send_error({501, "agent " + agent + " is not available: " + a->unavailable_reason});
    if (auto t = a->templates.find(*tpl); t != a->templates.end())
      catalogue_name = t->second;
    spec.agent = create_spec::agent_launch{agent, model, task, a->command, a->key_env, key,
                                           a->cancel_grace_s};
  }
  auto entry = ctx.templates->find(catalogue_name);
  if (!entry)
    return req.out->send_error({501, "template " + catalogue_name + " is not available on this server"});
  spec.org_id = req.org;
  spec.template_id = entry->name;
  spec.alias = *tpl;
  spec.timeout_s = *life;
  spec.max_lifetime_s = *life;
  spec.idle_timeout_s = *idle;
  spec.metadata = std::move(*metadata);
  spec.env_vars = std::move(*env);
  auto out = req.out;
  auto reg = ctx.registry;
  auto endpoint = ctx.envd_endpoint;
  auto port = ctx.envd_port;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::create::value, spec)
      .then(
        [=](sandbox_record& r) {
          out->send_json(201, {{"vm_id", r.id},
                               {"state", "running"},
                               {"host_port", port},
                               {"endpoint", endpoint}});
        },
        e2a_error(out));
  });
}

void e2a_list(api_context& ctx, request& req) {
  auto out = req.out;
  with_org_records(
    ctx, req,
    [=](const std::vector<sandbox_record>& recs) {
      auto arr = json::array();
      for (auto& r : recs)
        if (r.state == sandbox_state::running || r.state == sandbox_state::paused)
          arr.push_back(summary(r));
      out->send_json(200, arr);
    },
    e2a_error(out));
}

void e2a_get(api_context& ctx, request& req) {
  auto out = req.out;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::get::value)
      .then(
        [=](sandbox_record& r) {
          auto j = summary(r);
          j["rootfs"] = r.alias;
          if (auto a = agent_of(r); !a.name.empty()) {
            j["agent"] = a.name;
            // Starting counts as running: the process is on its way.
            j["agent_status"] = a.status.empty() ? "running" : a.status;
            if (a.exit_code)
              j["agent_exit_code"] = *a.exit_code;
          }
          out->send_json(200, j);
        },
        e2a_error(out));
  });
}

void e2a_exec(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto command = nonempty_string_field(*body, "command");
  if (!command)
    return req.out->send_error(command.error());
  // One pipe for both streams keeps them interleaved as produced.
  json op = {{"op", "exec"},
             {"cmd", "/bin/sh"},
             {"args", {"-c", "exec 2>&1\n" + *command}},
             {"user", "user"},
             {"timeout_ms", 600000},
             {"stdin", false}};
  auto out = req.out;
  auto frame = to_frame(op);
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::exec::value, frame, int64_t{610000})
      .then(
        [=](exec_outcome& r) {
          // The first MiB of output (agent::kRunOutputLimit); `truncated:
          // true` (only then, e2a's shape is {output, exit_code}) says the
          // command printed more.
          json answer = {{"output", r.stdout_text}, {"exit_code", r.exit_code}};
          if (r.stdout_truncated)
            answer["truncated"] = true;
          out->send_json(200, answer);
        },
        e2a_error(out));
  });
}

void e2a_delete(api_context& ctx, request& req) {
  auto out = req.out;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::kill::value, kill_reason::request)
      .then(
        [=](sandbox_record& r) { out->send_json(200, {{"vm_id", r.id}, {"state", "destroyed"}}); },
        e2a_error(out));
  });
}

void e2a_cancel(api_context& ctx, request& req) {
  auto out = req.out;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::cancel::value)
      .then(
        [=](sandbox_record& r) {
          out->send_json(200, {{"vm_id", r.id}, {"cancelled", true}, {"reason", "user_request"}});
        },
        e2a_error(out));
  });
}

void e2a_logs(api_context& ctx, request& req) {
  auto limit = int_param(req.query_param("limit"), "limit", 100, 1, 1000);
  if (!limit)
    return req.out->send_error(limit.error());
  int64_t since = 0;
  if (auto s = req.query_param("since"); s && !s->empty()) {
    auto parsed = parse_rfc3339(*s);
    if (!parsed)
      return req.out->send_error(bad_request("since must be an ISO 8601 timestamp"));
    since = *parsed;
  }
  auto out = req.out;
  auto db = ctx.db;
  auto n = static_cast<size_t>(*limit);
  // Through the sandbox's actor: the org check, and it counts as activity.
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::get::value)
      .then(
        [=](sandbox_record& r) {
          auto found = db->logs(r.id, n, since);
          if (!found)
            return out->send_error(found.error());
          auto lines = json::array();
          for (auto& l : *found)
            lines.push_back(
              {{"timestamp", to_rfc3339(l.timestamp_ms)}, {"stream", l.stream}, {"line", l.line}});
          out->send_json(200, {{"vm_id", r.id}, {"lines", lines}});
        },
        e2a_error(out));
  });
}

} // namespace sandboxd::http
