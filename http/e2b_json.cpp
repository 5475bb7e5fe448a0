#include "http/e2b_json.hpp"

#include "core/clock.hpp"
#include "core/crypto.hpp"

namespace sandboxd::http {

nlohmann::json sandbox_json(const sandbox_record& rec, const std::string& secret) {
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
    {"domain", nullptr},
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
    {"network", {{"allowOut", net.allow_out}, {"denyOut", net.deny_out}}},
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
