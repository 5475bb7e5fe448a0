#include "http/e2b_json.hpp"

#include "core/clock.hpp"
#include "core/crypto.hpp"

namespace sandboxd::http {

namespace {

// The ingress settings appear once given, as E2B echoes them.
nlohmann::json network_json(const network_view& net) {
  nlohmann::json out = {{"allowOut", net.allow_out}, {"denyOut", net.deny_out}};
  if (!net.public_traffic)
    out["allowPublicTraffic"] = false;
  if (!net.mask_request_host.empty())
    out["maskRequestHost"] = net.mask_request_host;
  if (!net.rules.empty())
    out["rules"] = egress_rules_json(net.rules);
  return out;
}

} // namespace

nlohmann::json sandbox_json(const sandbox_record& rec, const sandbox_json_keys& keys) {
  auto& secret = keys.secret;
  auto state = to_string(rec.state);
  auto life = lifecycle_of(rec);
  auto net = network_of(rec);
  return {
    {"sandboxID", rec.id},
    {"templateID", rec.template_id},
    {"alias", rec.alias},
    {"clientID", "sandboxd"},
    {"envdVersion", envd_version},
    {"envdAccessToken", envd_access_token(secret, rec.id)},
    {"domain", keys.domain.empty() ? nlohmann::json(nullptr) : nlohmann::json(keys.domain)},
    {"trafficAccessToken", net.public_traffic ? nlohmann::json(nullptr)
                                              : nlohmann::json(traffic_access_token(secret, rec.id))},
    {"metadata", rec.metadata},
    {"startedAt", to_rfc3339(rec.started_at_ms)},
    {"endAt", to_rfc3339(rec.end_at_ms)},
    {"status", state},
    {"state", state},
    {"cpuCount", rec.cpu_count},
    {"memoryMB", rec.memory_mb},
    {"diskSizeMB", rec.disk_size_mb},
    {"lifecycle", {{"onTimeout", life.pause_on_timeout ? "pause" : "kill"},
                   {"autoResume", life.auto_resume}}},
    {"allowInternetAccess", net.internet_set ? nlohmann::json(net.internet) : nlohmann::json(nullptr)},
    {"network", network_json(net)},
    {"volumeMounts", mounts_json(rec.ext.count(event_ext::volumes)
                                   ? decode_mounts(rec.ext.at(event_ext::volumes))
                                   : std::vector<volume_mount>{})},
  };
}

nlohmann::json metric_json(const container_sample& s) {
  return {
    {"timestamp", to_rfc3339(s.timestamp_ms)},
    {"timestampUnix", s.timestamp_ms / 1000},
    {"cpuCount", s.cpu_count},
    {"cpuUsedPct", s.cpu_used_pct},
    {"memUsed", s.mem_used},
    {"memTotal", s.mem_total},
    {"memCache", s.mem_cache},
    {"diskUsed", s.disk_used},
    {"diskTotal", s.disk_total},
  };
}

} // namespace sandboxd::http
