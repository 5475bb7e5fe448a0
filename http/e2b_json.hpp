// E2B's JSON shapes for sandboxes and metrics.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/sandbox.hpp"
#include "runtime/containers.hpp"

namespace sandboxd::http {

/// The envd version we speak; the SDK gates features on it.
inline constexpr const char* envd_version = "0.6.13";

/// Sandbox / SandboxDetail / ListedSandbox in one object.
nlohmann::json sandbox_json(const sandbox_record& rec, const std::string& secret);

/// One SandboxMetric: {timestamp, timestampUnix, cpuCount, cpuUsedPct, ...}.
nlohmann::json metric_json(const container_sample& s);

} // namespace sandboxd::http
