// The JSON forms of records before record format 1: see legacy_records.hpp.
// Kept as those versions wrote them, field names included.
#include "storage/legacy_records.hpp"

#include "core/crypto.hpp"

namespace sandboxd::legacy {

using json = nlohmann::json;

std::optional<webhook> webhook_from(const json& j) {
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

std::optional<delivery> delivery_from(const json& j) {
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

std::optional<volume> volume_from(const json& j) {
  try {
    volume v;
    v.id = j.at("id");
    v.org_id = j.at("org");
    v.name = j.at("name");
    v.created_ms = j.value("created", int64_t{0});
    v.size_mb = j.value("size_mb", int64_t{0});
    if (!valid_volume_id(v.id))
      return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<secret_record> secret_from(const json& j) {
  try {
    secret_record s;
    s.id = j.at("id");
    s.org_id = j.at("org");
    s.name = j.at("name");
    s.metadata = j.value("metadata", std::map<std::string, std::string>{});
    s.created_ms = j.value("created", int64_t{0});
    s.updated_ms = j.value("updated", int64_t{0});
    s.current_version = j.value("current", int64_t{0});
    for (auto& v : j.at("versions")) {
      auto sealed = hex_decode(v.at("sealed").get<std::string>());
      if (!sealed)
        return std::nullopt;
      s.versions.push_back({v.at("v"), v.value("at", int64_t{0}), *sealed});
    }
    if (!valid_secret_id(s.id))
      return std::nullopt;
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<snapshot_info> snapshot_from(const json& j) {
  try {
    snapshot_info s;
    s.id = j.at("id");
    s.org_id = j.at("org");
    s.name = j.value("name", "");
    s.sandbox_id = j.value("sandbox", "");
    s.template_id = j.at("template");
    s.layers = j.at("layers").get<std::vector<std::string>>();
    s.created_ms = j.value("created", int64_t{0});
    s.hidden = j.value("hidden", false);
    s.node = j.value("node", ""); // absent before the cluster: the control node
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<sandbox_record> sandbox_from(const json& j) {
  try {
    sandbox_record r;
    r.id = j.at("id");
    r.org_id = j.at("org");
    r.template_id = j.at("template");
    r.alias = j.at("alias");
    r.metadata = j.at("metadata").get<std::map<std::string, std::string>>();
    r.env_vars = j.at("env").get<std::map<std::string, std::string>>();
    r.cpu_count = j.at("cpu");
    r.memory_mb = j.at("memory");
    r.disk_size_mb = j.at("disk");
    r.timeout_s = j.at("timeout");
    r.idle_timeout_s = j.value("idle", int64_t{0});
    r.max_end_ms = j.value("maxEnd", int64_t{0});
    r.started_at_ms = j.at("startedAt");
    r.end_at_ms = j.at("endAt");
    r.state = static_cast<sandbox_state>(j.at("state").get<int>());
    r.execution_id = j.at("execution");
    r.execution_started_ms = j.at("executionStarted");
    r.last_seq = j.at("lastSeq");
    if (j.contains("endReason"))
      r.end_reason = static_cast<kill_reason>(j["endReason"].get<int>());
    if (j.contains("ext"))
      r.ext = j["ext"].get<std::map<std::string, std::string>>();
    return r;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<template_build> build_from(const json& j) {
  try {
    template_build b;
    b.id = j.at("id");
    b.template_id = j.at("template");
    b.org_id = j.at("org");
    auto st = parse_build_status(j.at("status").get<std::string>());
    if (!st)
      return std::nullopt;
    b.status = *st;
    b.reason = j.value("reason", "");
    b.created_ms = j.value("created", int64_t{0});
    b.updated_ms = j.value("updated", int64_t{0});
    b.finished_ms = j.value("finished", int64_t{0});
    b.parent = j.value("parent", "");
    b.packages = j.value("packages", std::vector<std::string>{});
    b.run = j.value("run", std::vector<std::string>{});
    b.env = j.value("env", std::map<std::string, std::string>{});
    b.start_cmd = j.value("start_cmd", "");
    b.ready_port = j.value("ready_port", 0);
    b.cpu_count = j.value("cpu", 2);
    b.memory_mb = j.value("mem", 512);
    b.hash = j.at("hash");
    b.code = j.value("code", false);
    if (auto t = j.find("steps"); t != j.end()) {
      template_steps steps;
      steps.from_template = t->at("from_template");
      steps.from_image = t->value("from_image", "");
      for (auto& x : t->at("steps"))
        steps.steps.push_back({x.at("type"), x.value("args", std::vector<std::string>{}),
                               x.value("files", ""), x.value("force", false)});
      steps.start_cmd = t->value("start_cmd", "");
      steps.ready_cmd = t->value("ready_cmd", "");
      steps.force = t->value("force", false);
      b.steps = std::move(steps);
    }
    b.snapshot_id = j.value("snapshot", "");
    b.failed_step = j.value("failed_step", "");
    b.tags = j.value("tags", std::vector<std::string>{});
    b.default_user = j.value("default_user", "");
    b.default_workdir = j.value("default_workdir", "");
    b.tag_times = j.value("tag_times", std::map<std::string, int64_t>{});
    if (j.contains("asked_cpu"))
      b.asked_cpu = j.at("asked_cpu").get<int>();
    if (j.contains("asked_memory_mb"))
      b.asked_memory_mb = j.at("asked_memory_mb").get<int>();
    return b;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<user_template> template_from(const json& j) {
  try {
    user_template t;
    t.id = j.at("id");
    t.org_id = j.at("org");
    t.name = j.at("name");
    t.created_ms = j.value("created", int64_t{0});
    t.updated_ms = j.value("updated", int64_t{0});
    t.build_count = j.value("builds", uint64_t{0});
    t.latest_build = j.value("latest", "");
    t.latest_status = parse_build_status(j.value("status", "error")).value_or(build_status::error);
    if (j.contains("ready")) {
      t.ready = build_from(j.at("ready"));
      if (!t.ready)
        return std::nullopt;
    }
    return t;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<build_log_entry> build_log_from(const json& j) {
  if (!j.is_object())
    return std::nullopt;
  try {
    return build_log_entry{j.value("t", int64_t{0}), j.value("v", "info"), j.value("s", ""),
                           j.value("m", "")};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<store::log_line> log_line_from(const json& j) {
  if (!j.is_object())
    return std::nullopt;
  try {
    return store::log_line{j.value("t", int64_t{0}), j.value("s", ""), j.value("l", "")};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<container_sample> sample_from(const json& j) {
  if (!j.is_object())
    return std::nullopt;
  try {
    container_sample s;
    s.timestamp_ms = j.value("t", int64_t{0});
    s.cpu_count = j.value("c", 0);
    s.cpu_used_pct = j.value("p", 0.0);
    s.mem_used = j.value("mu", int64_t{0});
    s.mem_total = j.value("mt", int64_t{0});
    s.mem_cache = j.value("mc", int64_t{0});
    s.disk_used = j.value("du", int64_t{0});
    s.disk_total = j.value("dt", int64_t{0});
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<std::set<std::string>> drained_nodes_from(const json& j) {
  if (!j.is_array())
    return std::nullopt;
  std::set<std::string> out;
  for (auto& n : j)
    if (n.is_string())
      out.insert(n.get<std::string>());
  return out;
}

std::optional<legacy_checkpoint> checkpoint_from(const json& j, const std::string& secret) {
  if (!j.is_object())
    return std::nullopt;
  try {
    legacy_checkpoint c;
    c.body.seq = j.at("seq");
    c.body.hash = j.at("hash");
    c.body.at_ms = j.at("at");
    for (auto& r : j.at("sandboxes")) {
      auto rec = sandbox_from(r);
      if (!rec)
        return std::nullopt; // a record lost would be a sandbox forgotten
      c.body.sandboxes.push_back(std::move(*rec));
    }
    auto body = j;
    body.erase("signature");
    c.signed_ok = secure_equals(j.at("signature").get<std::string>(),
                                hmac_sha256_hex(secret, "checkpoint:" + body.dump()));
    return c;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

} // namespace sandboxd::legacy
