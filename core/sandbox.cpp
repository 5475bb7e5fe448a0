#include "core/sandbox.hpp"

#include <cstdlib>

#include <algorithm>

namespace sandboxd {

std::string to_string(sandbox_state s) {
  switch (s) {
    case sandbox_state::creating: return "creating";
    case sandbox_state::running: return "running";
    case sandbox_state::paused: return "paused";
    case sandbox_state::stopped: return "stopped";
    case sandbox_state::error: return "error";
  }
  return "unknown";
}

std::optional<sandbox_state> parse_sandbox_state(const std::string& s) {
  for (auto st : {sandbox_state::creating, sandbox_state::running,
                  sandbox_state::paused, sandbox_state::stopped,
                  sandbox_state::error})
    if (to_string(st) == s)
      return st;
  return std::nullopt;
}

bool ended(const sandbox_record& rec) {
  return rec.state == sandbox_state::stopped
         || (rec.state == sandbox_state::error && rec.last_seq != 0);
}

status check_transition(sandbox_state state, sandbox_op op) {
  if (state == sandbox_state::stopped || state == sandbox_state::error)
    return not_found("sandbox not found");
  if (state == sandbox_state::creating)
    return conflict("sandbox is still being created");
  switch (op) {
    case sandbox_op::pause:
      if (state == sandbox_state::paused)
        return conflict("sandbox is already paused");
      return success();
    case sandbox_op::resume:
      // Resuming a running sandbox is a no-op that still succeeds (connect).
      return success();
    case sandbox_op::kill:
      return success();
    case sandbox_op::set_timeout:
    case sandbox_op::use:
      if (state == sandbox_state::paused)
        return conflict("sandbox is paused");
      return success();
  }
  return internal_error("unknown operation");
}

status apply(sandbox_record& rec, const event& e) {
  if (!is_sandbox_event(e.type))
    return bad_request("event " + e.id + " is a volume's, not a sandbox's");
  if (e.type != event_type::created && e.sandbox_id != rec.id)
    return bad_request("event " + e.id + " belongs to another sandbox");
  if (rec.last_seq != 0 && e.seq != 0 && e.seq <= rec.last_seq)
    return bad_request("event " + e.id + " is out of order");
  switch (e.type) {
    case event_type::created:
      if (rec.last_seq != 0)
        return bad_request("sandbox " + e.sandbox_id + " created twice");
      rec.id = e.sandbox_id;
      rec.org_id = e.team_id;
      rec.template_id = e.template_id;
      rec.alias = e.alias;
      rec.metadata = e.metadata;
      rec.env_vars = e.env_vars;
      rec.cpu_count = e.cpu_count;
      rec.memory_mb = e.memory_mb;
      rec.disk_size_mb = e.disk_size_mb;
      rec.timeout_s = e.timeout_s;
      rec.idle_timeout_s = e.idle_timeout_s;
      rec.max_end_ms = e.max_end_ms;
      rec.started_at_ms = e.timestamp_ms;
      rec.end_at_ms = e.end_at_ms;
      rec.state = sandbox_state::running;
      rec.execution_id = e.execution_id;
      rec.execution_started_ms = e.timestamp_ms;
      break;
    case event_type::paused:
      if (rec.state != sandbox_state::running)
        return bad_request("paused while " + to_string(rec.state));
      rec.state = sandbox_state::paused;
      break;
    case event_type::resumed:
      if (rec.state != sandbox_state::paused)
        return bad_request("resumed while " + to_string(rec.state));
      rec.state = sandbox_state::running;
      rec.end_at_ms = e.end_at_ms;
      rec.execution_id = e.execution_id;
      rec.execution_started_ms = e.timestamp_ms;
      break;
    case event_type::updated:
      if (rec.state != sandbox_state::running
          && rec.state != sandbox_state::paused)
        return bad_request("updated while " + to_string(rec.state));
      rec.end_at_ms = e.end_at_ms;
      if (e.timeout_s > 0)
        rec.timeout_s = e.timeout_s;
      break;
    case event_type::killed:
      if (ended(rec))
        return bad_request("killed twice");
      // Its node lost, nobody stopped it: an error, as E2B shows one.
      rec.state = e.reason == kill_reason::node_lost ? sandbox_state::error
                                                     : sandbox_state::stopped;
      rec.end_reason = e.reason;
      break;
    case event_type::volume_created:
    case event_type::volume_deleted:
      return bad_request("event " + e.id + " is a volume's, not a sandbox's");
  }
  for (auto& [k, v] : e.ext)
    rec.ext[k] = v;
  rec.last_seq = e.seq;
  return success();
}

agent_view agent_of(const sandbox_record& rec) {
  agent_view a;
  auto get = [&](const char* key) {
    auto it = rec.ext.find(key);
    return it == rec.ext.end() ? std::string{} : it->second;
  };
  a.name = get(event_ext::agent);
  a.model = get(event_ext::agent_model);
  a.status = get(event_ext::agent_status);
  a.pid = ext_number(get(event_ext::agent_pid)).value_or(0);
  a.exit_code = ext_number(get(event_ext::agent_exit_code));
  a.cancel_reason = get(event_ext::agent_cancel);
  a.cancel_grace_s = ext_number(get(event_ext::agent_grace)).value_or(10);
  return a;
}

bool metadata_matches(const sandbox_record& rec, const std::map<std::string, std::string>& want) {
  for (auto& [k, v] : want) {
    auto i = rec.metadata.find(k);
    if (i == rec.metadata.end() || i->second != v)
      return false;
  }
  return true;
}

lifecycle_view lifecycle_of(const sandbox_record& rec) {
  auto is = [&](const char* key, const char* value) {
    auto it = rec.ext.find(key);
    return it != rec.ext.end() && it->second == value;
  };
  lifecycle_view l;
  l.pause_on_timeout = is(event_ext::on_timeout, "pause");
  l.keep_memory = !is(event_ext::keep_memory, "false");
  l.auto_resume = is(event_ext::auto_resume, "true");
  l.cold = rec.state == sandbox_state::paused && is(event_ext::cold, "true");
  return l;
}

network_view network_of(const sandbox_record& rec) {
  network_view n;
  auto get = [&](const char* key) -> const std::string* {
    auto it = rec.ext.find(key);
    return it == rec.ext.end() ? nullptr : &it->second;
  };
  if (auto v = get(event_ext::net_internet); v && !v->empty()) {
    n.internet_set = true;
    n.internet = *v == "true";
  }
  auto list = [](const std::string* v) {
    std::vector<std::string> out;
    if (!v)
      return out;
    auto j = nlohmann::json::parse(*v, nullptr, false);
    if (j.is_array())
      for (auto& x : j)
        if (x.is_string())
          out.push_back(x.get<std::string>());
    return out;
  };
  n.allow_out = list(get(event_ext::net_allow));
  n.deny_out = list(get(event_ext::net_deny));
  if (auto v = get(event_ext::net_public))
    n.public_traffic = *v != "false";
  if (auto v = get(event_ext::net_mask_host))
    n.mask_request_host = *v;
  if (auto v = get(event_ext::net_rules))
    n.rules = decode_egress_rules(*v);
  return n;
}

std::map<std::string, std::string> ingress_ext(const network_view& n) {
  std::map<std::string, std::string> ext;
  if (!n.public_traffic)
    ext[event_ext::net_public] = "false";
  if (!n.mask_request_host.empty())
    ext[event_ext::net_mask_host] = n.mask_request_host;
  return ext;
}

std::map<std::string, std::string> network_ext(const network_view& n) {
  return {{event_ext::net_internet, n.internet_set ? (n.internet ? "true" : "false") : ""},
          {event_ext::net_allow, nlohmann::json(n.allow_out).dump()},
          {event_ext::net_deny, nlohmann::json(n.deny_out).dump()},
          {event_ext::net_rules, encode_egress_rules(n.rules)}};
}

int64_t capped_end(const sandbox_record& rec, int64_t requested_end_ms) {
  return rec.max_end_ms > 0 ? std::min(requested_end_ms, rec.max_end_ms) : requested_end_ms;
}

execution_info current_execution(const sandbox_record& rec, int64_t now_ms) {
  execution_info x;
  x.started_at_ms = rec.execution_started_ms;
  x.vcpu_count = rec.cpu_count;
  x.memory_mb = rec.memory_mb;
  x.execution_time_ms = rec.state == sandbox_state::running
                          ? now_ms - rec.execution_started_ms
                          : 0;
  return x;
}

}  // namespace sandboxd
