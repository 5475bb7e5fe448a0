// The lifecycle event: the unit of the append-only log that is the source of
// truth for every sandbox. Serialized with cereal into RocksDB; rendered to
// E2B's public event shape by to_json.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/inspect.hpp"

namespace sandboxd {

// volume_created/volume_deleted: an org's volume (no sandbox_id; ext
// "volume.id", "volume.name"); replay and sandbox folds skip them.
enum class event_type : uint8_t { created, paused, resumed, killed, updated, volume_created,
                                  volume_deleted };

/// Whether events of type `t` belong to a sandbox (all but volumes').
bool is_sandbox_event(event_type t);

/// "sandbox.lifecycle.created" etc.
std::string to_string(event_type t);
std::optional<event_type> parse_event_type(const std::string& s);

/// Why a sandbox ended, recorded in `killed` events.
// node_lost: the worker node it ran on was lost (the sandbox ends in `error`).
enum class kill_reason : uint8_t { request, timeout, orphaned, error, idle, node_lost };
std::string to_string(kill_reason r);

/// One stretch of running time (created or resumed → paused or killed).
struct execution_info {
  int64_t started_at_ms = 0;
  int32_t vcpu_count = 0;
  int32_t memory_mb = 0;
  int64_t execution_time_ms = 0;
};

struct event {
  uint64_t seq = 0;             // assigned by the log, strictly increasing
  std::string id;               // uuid
  event_type type = event_type::created;
  int64_t timestamp_ms = 0;
  std::string sandbox_id;
  std::string template_id;
  std::string team_id;          // the org's id
  std::string execution_id;     // changes on every create/resume
  std::map<std::string, std::string> metadata;
  // The sandbox's endAt after this event (created, resumed, updated).
  int64_t end_at_ms = 0;
  // `created` carries the whole spec so that replay alone rebuilds state.
  std::map<std::string, std::string> env_vars;
  std::string alias;
  int32_t cpu_count = 0;
  int32_t memory_mb = 0;
  int32_t disk_size_mb = 0;
  int64_t timeout_s = 0;
  int64_t idle_timeout_s = 0; // no API activity this long ends it (0: never)
  int64_t max_end_ms = 0;     // a hard end no timeout can extend (0: none)
  // `paused` and `killed`.
  std::optional<execution_info> execution;
  // `killed`.
  std::optional<kill_reason> reason;
  // Named facts that only some events carry (format 4 on), so new kinds of
  // change need no new layout: "agent", "agent.model" on `created`;
  // "agent.grace_s" on `created`; "agent.status", "agent.pid",
// "agent.exit_code", "agent.cancel" on
  // `updated`. Keys listed in `event_ext` below.
  std::map<std::string, std::string> ext;
  // The hash chain: `hash` = SHA-256(prev_hash ‖ canonical_bytes), hex.
  std::string prev_hash;
  std::string hash;
  // The storage layout this event was written in; re-encoding uses it so
  // the hash of an old event is computed over its original bytes.
  uint8_t format = 4;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event& x) {
  return f(caf::meta::type_name("event"), x.seq, x.id, x.type, x.timestamp_ms,
           x.sandbox_id, x.template_id, x.team_id, x.execution_id, x.metadata,
           x.end_at_ms, caf::meta::omittable(), x.env_vars, x.alias, x.cpu_count,
           x.memory_mb, x.disk_size_mb, x.timeout_s, x.idle_timeout_s, x.max_end_ms,
           optional_field(x.execution), optional_field(x.reason), x.ext,
           x.prev_hash, x.hash, x.format);
}

/// The keys of event::ext.
namespace event_ext {
inline constexpr const char* agent = "agent";                 // agent type
inline constexpr const char* agent_model = "agent.model";
inline constexpr const char* agent_status = "agent.status";   // running|completed|failed
inline constexpr const char* agent_pid = "agent.pid";
inline constexpr const char* agent_exit_code = "agent.exit_code";
inline constexpr const char* agent_cancel = "agent.cancel";   // why: user_request
inline constexpr const char* agent_grace = "agent.grace_s";   // SIGTERM→SIGKILL seconds
inline constexpr const char* on_timeout = "lifecycle.on_timeout";    // kill|pause
inline constexpr const char* keep_memory = "lifecycle.keep_memory";  // "false": cold pause
inline constexpr const char* auto_resume = "lifecycle.auto_resume";  // "true"|"false"
inline constexpr const char* cold = "paused.cold";  // on `paused`: "true" memory freed, else "false"
inline constexpr const char* net_internet = "network.internet";   // "true"|"false"; absent: default
inline constexpr const char* net_allow = "network.allow_out";     // JSON array of strings
inline constexpr const char* net_deny = "network.deny_out";       // JSON array of strings
inline constexpr const char* net_rules = "network.rules"; // E2B's rules object (core/egress_rules.hpp)
inline constexpr const char* net_public = "network.public_traffic"; // "false": ports need a token
inline constexpr const char* net_mask_host = "network.mask_request_host"; // Host the ports see
inline constexpr const char* default_user = "template.user";       // who runs processes unasked
inline constexpr const char* default_workdir = "template.workdir"; // where they start unasked
inline constexpr const char* volumes = "volumes"; // on `created`: the volume mounts (core/volume.hpp encode_mounts)
inline constexpr const char* volume_id = "volume.id";     // on volume events
inline constexpr const char* volume_name = "volume.name"; // on volume events
inline constexpr const char* node = "node"; // on `created`: the worker node it runs on (absent: the control node)
} // namespace event_ext

/// An integer extension value ("42"); nullopt when it is not one.
std::optional<int64_t> ext_number(const std::string& value);

/// E2B's public shape: {id, version, type, timestamp, sandboxId, ...,
/// eventData{sandbox_metadata, set_timeout?, execution?, kill_reason?,
/// agent?}}.
/// Internal fields (env vars, resources) are never rendered.
nlohmann::json to_json(const event& e);

/// cereal encoding used for storage; decode returns nullopt on corrupt bytes.
std::string encode(const event& e);
std::optional<event> decode_event(std::string_view bytes);

/// What the chain hashes: every field but `hash` (prev_hash and seq
/// included, so neither reordering nor relinking goes unnoticed).
std::string canonical_bytes(const event& e);

/// SHA-256(prev_hash ‖ canonical_bytes(e)) as hex.
std::string chain_hash(const event& e);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, execution_info& x) {
  return f(x.started_at_ms, x.vcpu_count, x.memory_mb, x.execution_time_ms);
}

}  // namespace sandboxd
