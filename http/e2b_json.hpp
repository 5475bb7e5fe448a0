// E2B's JSON shapes for sandboxes and metrics.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/sandbox.hpp"
#include "runtime/containers.hpp"

namespace sandboxd::http {

/// The envd version we speak; the SDK gates features on it.
inline constexpr const char* envd_version = "0.6.13";

/// What a sandbox's answer needs beside its record: the server secret its
/// tokens derive from, and the domain its ports are named under (serve
/// --domain; empty: none).
struct sandbox_json_keys {
  std::string secret;
  std::string domain;
};

/// Sandbox / SandboxDetail / ListedSandbox in one object.
nlohmann::json sandbox_json(const sandbox_record& rec, const sandbox_json_keys& keys);

/// One SandboxMetric: {timestamp, timestampUnix, cpuCount, cpuUsedPct, ...}.
nlohmann::json metric_json(const container_sample& s);

} // namespace sandboxd::http
