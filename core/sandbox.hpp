// The sandbox as the log describes it, and the state machine that moves it:
//   creating → running ⇄ paused → stopped, or error.
// Pure functions over plain data so replay, the live actor and the tests all
// share one definition of what a transition means.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/egress_rules.hpp"
#include "core/volume.hpp"
#include "core/event.hpp"
#include "core/inspect.hpp"
#include "core/result.hpp"

namespace sandboxd {

enum class sandbox_state : uint8_t { creating, running, paused, stopped, error };

std::string to_string(sandbox_state s);

/// A record the log ended: killed (stopped), or lost with its node (error).
/// A record in `error` that was never logged (a failed boot) is not one.
struct sandbox_record;
bool ended(const sandbox_record& rec);
std::optional<sandbox_state> parse_sandbox_state(const std::string& s);

/// E2B's network settings: egress (allowInternetAccess, network{allowOut,
/// denyOut}) and ingress to the sandbox's ports (network{allowPublicTraffic,
/// maskRequestHost}, fixed at create).
struct network_view {
  bool internet = true;
  bool internet_set = false; // allowInternetAccess was given (else reported as null)
  std::vector<std::string> allow_out, deny_out;
  bool public_traffic = true;     // false: a port request needs the traffic access token
  std::string mask_request_host;  // the Host a port sees ("${PORT}" replaced); empty: the client's
  std::vector<egress_rule> rules; // network.rules: headers set on HTTPS requests to their hosts
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, network_view& x) {
  return f(caf::meta::type_name("network_view"), x.internet, x.internet_set,
           x.allow_out, x.deny_out, x.public_traffic, x.mask_request_host, x.rules);
}

/// What a client asked for when creating a sandbox (already validated).
struct create_spec {
  std::string org_id;
  std::string template_id;
  int64_t timeout_s = 300;
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::string> env_vars;
  std::string alias;           // the name the client used (e2a: "standard")
  int64_t idle_timeout_s = 0;  // 0: no idle timeout
  int64_t max_lifetime_s = 0;  // 0: no hard end
  // A one-shot agent started once the sandbox runs (e2a). The key is never
  // logged: it reaches the agent process as a secret variable only.
  struct agent_launch {
    std::string name, model, task;
    std::string command;        // run with sh -c
    std::string key_env, key;
    int cancel_grace_s = 10;
  };
  std::optional<agent_launch> agent;
  // E2B's lifecycle: on timeout pause (keeping memory or not) instead of
  // kill, and resume a paused sandbox when the data plane is used.
  bool auto_pause = false;
  bool auto_pause_memory = true;
  bool auto_resume = false;
  network_view network;
  std::vector<volume_mount> volumes; // names checked; the registry resolves them
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_spec::agent_launch& x) {
  return f(caf::meta::type_name("agent_launch"), x.name, x.model, x.task, x.command,
           x.key_env, caf::meta::omittable(), x.key, x.cancel_grace_s);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_spec& x) {
  return f(caf::meta::type_name("create_spec"), x.org_id, x.template_id, x.timeout_s,
           x.metadata, caf::meta::omittable(), x.env_vars, x.alias, x.idle_timeout_s,
           x.max_lifetime_s, optional_field(x.agent), x.auto_pause, x.auto_pause_memory,
           x.auto_resume, x.network, x.volumes);
}

/// Everything known about one sandbox; rebuilt by folding its events.
struct sandbox_record {
  std::string id;
  std::string org_id;
  std::string template_id;
  std::string alias;
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::string> env_vars;
  int32_t cpu_count = 0;
  int32_t memory_mb = 0;
  int32_t disk_size_mb = 0;
  int64_t timeout_s = 0;
  int64_t idle_timeout_s = 0;     // no API activity this long ends it
  int64_t max_end_ms = 0;         // the hard end (0: none)
  int64_t started_at_ms = 0;      // creation time
  int64_t end_at_ms = 0;          // when the TTL ends it (while running)
  sandbox_state state = sandbox_state::creating;
  std::string execution_id;
  int64_t execution_started_ms = 0;
  std::optional<kill_reason> end_reason;
  uint64_t last_seq = 0;          // the last event folded in
  // Every event's named extensions folded in, later values winning (see
  // event_ext): e.g. the agent's status.
  std::map<std::string, std::string> ext;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sandbox_record& x) {
  return f(caf::meta::type_name("sandbox_record"), x.id, x.org_id, x.template_id,
           x.alias, x.metadata, caf::meta::omittable(), x.env_vars, x.cpu_count,
           x.memory_mb, x.disk_size_mb, x.timeout_s, x.idle_timeout_s, x.max_end_ms,
           x.started_at_ms, x.end_at_ms, x.state, x.execution_id, x.execution_started_ms,
           optional_field(x.end_reason), x.last_seq, x.ext);
}

/// The one-shot agent of an e2a sandbox, read from the record's extensions.
struct agent_view {
  std::string name;               // empty: the sandbox has no agent
  std::string model;
  std::string status;             // running|completed|failed, or "" before it starts
  int64_t pid = 0;
  std::optional<int64_t> exit_code;
  std::string cancel_reason;      // set once a cancel was asked
  int64_t cancel_grace_s = 10;
};
agent_view agent_of(const sandbox_record& rec);

/// E2B's lifecycle policy of a sandbox, from its record's extensions.
struct lifecycle_view {
  bool pause_on_timeout = false;
  bool keep_memory = true;
  bool auto_resume = false;
  bool cold = false; // paused without its memory: the container is stopped
};
lifecycle_view lifecycle_of(const sandbox_record& rec);

network_view network_of(const sandbox_record& rec);
/// The named facts (event::ext) that record `n`; every key, so an update
/// replaces the whole policy.
std::map<std::string, std::string> network_ext(const network_view& n);
/// The ingress settings as `created` carries them (they never change after).
std::map<std::string, std::string> ingress_ext(const network_view& n);

/// Operations a client (or a timer) can ask of a sandbox.
enum class sandbox_op : uint8_t { pause, resume, kill, set_timeout, use };

/// Whether `op` is allowed in `state`; the failure says why not (404 for a
/// sandbox that is gone, 409 for a conflict such as pausing a paused one).
status check_transition(sandbox_state state, sandbox_op op);

/// Folds one event into the record. Events of other sandboxes, or that make
/// no sense in the current state, are rejected so replay can flag them.
status apply(sandbox_record& rec, const event& e);

/// Whether the sandbox carries every key=value of `want` in its metadata.
bool metadata_matches(const sandbox_record& rec, const std::map<std::string, std::string>& want);

/// A requested end capped by the sandbox's hard end, if it has one.
int64_t capped_end(const sandbox_record& rec, int64_t requested_end_ms);

/// The running-time summary for a paused/killed event at `now_ms`.
execution_info current_execution(const sandbox_record& rec, int64_t now_ms);

}  // namespace sandboxd
