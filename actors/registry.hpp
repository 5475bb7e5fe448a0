// The registry actor: sandbox ids → sandbox actors, per org.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "actors/interfaces.hpp"

namespace sandboxd {

class store;
class sandbox_runtime;
class template_catalog;

struct registry_config {
  std::shared_ptr<store> db;                 // read for replay only
  std::shared_ptr<sandbox_runtime> runtime;
  std::shared_ptr<const template_catalog> templates;
  event_log_actor log;
  size_t max_sandboxes = 200;                // live sandboxes on this host
  size_t max_sandboxes_per_org = 200;        // live sandboxes of one org
  int disk_size_mb = 10240;
  size_t max_snapshots_per_org = 100;        // each holds a copy of a sandbox's files
  std::chrono::milliseconds metrics_interval{5000}; // between metrics ticks (every running sandbox)
  // Warm sandboxes kept booted per catalogue template (serve --warm-pool).
  std::map<std::string, size_t> warm_pool;
  // How a live sandbox shows in a listing (the API's JSON); the registry
  // keeps each rendering until the sandbox's record changes.
  std::function<std::string(const sandbox_record&)> render;
};

registry_actor spawn_registry(caf::actor_system& sys, registry_config cfg);

} // namespace sandboxd
