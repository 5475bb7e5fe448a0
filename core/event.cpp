#include "core/event.hpp"

#include <cstdlib>
#include <sstream>

#include <cereal/archives/binary.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/crypto.hpp"

namespace sandboxd {

std::string to_string(event_type t) {
  switch (t) {
    case event_type::created: return "sandbox.lifecycle.created";
    case event_type::paused: return "sandbox.lifecycle.paused";
    case event_type::resumed: return "sandbox.lifecycle.resumed";
    case event_type::killed: return "sandbox.lifecycle.killed";
    case event_type::updated: return "sandbox.lifecycle.updated";
    case event_type::volume_created: return "volume.lifecycle.created";
    case event_type::volume_deleted: return "volume.lifecycle.deleted";
  }
  return "unknown";
}

std::optional<event_type> parse_event_type(const std::string& s) {
  for (auto t : {event_type::created, event_type::paused, event_type::resumed,
                 event_type::killed, event_type::updated, event_type::volume_created,
                 event_type::volume_deleted})
    if (to_string(t) == s)
      return t;
  return std::nullopt;
}

bool is_sandbox_event(event_type t) {
  return t != event_type::volume_created && t != event_type::volume_deleted;
}

std::string to_string(kill_reason r) {
  switch (r) {
    case kill_reason::request: return "request";
    case kill_reason::timeout: return "timeout";
    case kill_reason::orphaned: return "orphaned";
    case kill_reason::error: return "error";
    case kill_reason::idle: return "idle";
    case kill_reason::node_lost: return "node_lost";
  }
  return "unknown";
}

std::optional<int64_t> ext_number(const std::string& value) {
  char* end = nullptr;
  auto n = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0')
    return std::nullopt;
  return n;
}

nlohmann::json to_json(const event& e) {
  nlohmann::json data;
  data["sandbox_metadata"] = e.metadata;
  if (e.type == event_type::updated)
    data["set_timeout"] = to_rfc3339(e.end_at_ms);
  if (e.execution) {
    data["execution"] = {
      {"started_at", to_rfc3339(e.execution->started_at_ms)},
      {"vcpu_count", e.execution->vcpu_count},
      {"memory_mb", e.execution->memory_mb},
      {"execution_time_ms", e.execution->execution_time_ms},
    };
  }
  if (e.reason)
    data["kill_reason"] = to_string(*e.reason);
  // Beyond E2B: a one-shot agent's life (e2a), keys without the prefix.
  for (auto& [k, v] : e.ext) {
    if (k == event_ext::agent)
      data["agent"]["name"] = v;
    else if (k.rfind("agent.", 0) == 0) {
      auto name = k.substr(6);
      auto n = ext_number(v);
      if ((name == "pid" || name == "exit_code" || name == "grace_s") && n)
        data["agent"][name] = *n;
      else
        data["agent"][name] = v;
    }
  }
  nlohmann::json out = {
    {"id", e.id},
    {"version", "v1"},
    {"type", to_string(e.type)},
    {"timestamp", to_rfc3339(e.timestamp_ms)},
    {"sandboxId", e.sandbox_id},
    {"sandboxExecutionId", e.execution_id},
    {"sandboxTemplateId", e.template_id},
    {"sandboxBuildId", e.template_id},
    {"sandboxTeamId", e.team_id},
    {"eventData", std::move(data)},
  };
  if (!is_sandbox_event(e.type)) { // a volume's: no sandbox fields
    out = {{"id", e.id},
           {"version", "v1"},
           {"type", to_string(e.type)},
           {"timestamp", to_rfc3339(e.timestamp_ms)},
           {"teamId", e.team_id},
           {"eventData",
            {{"volume_id", e.ext.count(event_ext::volume_id) ? e.ext.at(event_ext::volume_id) : ""},
             {"volume_name",
              e.ext.count(event_ext::volume_name) ? e.ext.at(event_ext::volume_name) : ""}}}};
  }
  // Beyond E2B: the sequence number and the hash chain, for auditors.
  out["seq"] = e.seq;
  out["prevHash"] = e.prev_hash;
  out["hash"] = e.hash;
  return out;
}

} // namespace sandboxd

namespace cereal {

template <class Archive>
void serialize(Archive& ar, sandboxd::execution_info& x) {
  ar(x.started_at_ms, x.vcpu_count, x.memory_mb, x.execution_time_ms);
}

} // namespace cereal

namespace sandboxd {

namespace {

// Version byte first so the layout can evolve without breaking old logs:
// 1 had no hash chain, 2 appended prev_hash and hash, 3 adds the idle
// timeout and the hard end after the body, 4 the named extensions.
constexpr uint8_t event_format_version = 4;

template <class Archive>
void serialize_body(Archive& ar, event& e) {
  auto type = static_cast<uint8_t>(e.type);
  std::optional<uint8_t> reason;
  if (e.reason)
    reason = static_cast<uint8_t>(*e.reason);
  ar(e.seq, e.id, type, e.timestamp_ms, e.sandbox_id, e.template_id, e.team_id,
     e.execution_id, e.metadata, e.end_at_ms, e.env_vars, e.alias, e.cpu_count,
     e.memory_mb, e.disk_size_mb, e.timeout_s, e.execution, reason);
  e.type = static_cast<event_type>(type);
  if (reason)
    e.reason = static_cast<kill_reason>(*reason);
}

std::string write(const event& e, bool with_hash) {
  std::ostringstream out;
  {
    cereal::BinaryOutputArchive ar(out);
    auto copy = e;
    uint8_t version = e.format;
    ar(version);
    serialize_body(ar, copy);
    if (version >= 3)
      ar(copy.idle_timeout_s, copy.max_end_ms);
    if (version >= 4)
      ar(copy.ext);
    if (version >= 2) {
      ar(copy.prev_hash);
      if (with_hash)
        ar(copy.hash);
    }
  }
  return out.str();
}

} // namespace

std::string encode(const event& e) {
  return write(e, true);
}

std::string canonical_bytes(const event& e) {
  return write(e, false);
}

std::string chain_hash(const event& e) {
  return sha256_hex(e.prev_hash + canonical_bytes(e));
}

namespace {

// Reads the bytes in place. A replay decodes every event of the log: one
// stream per thread, pointed at each event's bytes in turn, spares an
// istringstream's copy and its locale set-up per event.
struct span_buf : std::streambuf {
  void point_at(std::string_view bytes) {
    auto* p = const_cast<char*>(bytes.data()); // read only: get area
    setg(p, p, p + bytes.size());
  }
};

} // namespace

std::optional<event> decode_event(std::string_view bytes) {
  thread_local span_buf buf;
  thread_local std::istream in(&buf);
  buf.point_at(bytes);
  in.clear();
  try {
    cereal::BinaryInputArchive ar(in);
    uint8_t version = 0;
    ar(version);
    if (version < 1 || version > event_format_version)
      return std::nullopt;
    event e;
    e.format = version;
    serialize_body(ar, e);
    if (version >= 3)
      ar(e.idle_timeout_s, e.max_end_ms);
    if (version >= 4)
      ar(e.ext);
    if (version >= 2)
      ar(e.prev_hash, e.hash);
    // Trailing bytes mean this is not what was written.
    if (in.peek() != std::char_traits<char>::eof())
      return std::nullopt;
    if (static_cast<uint8_t>(e.type) > static_cast<uint8_t>(event_type::volume_deleted)
        || (e.reason && static_cast<uint8_t>(*e.reason) > static_cast<uint8_t>(kill_reason::node_lost)))
      return std::nullopt;
    return e;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

} // namespace sandboxd
