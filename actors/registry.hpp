// The registry actor: sandbox ids → sandbox actors, per org.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "actors/interfaces.hpp"
#include "runtime/catalogue_builds.hpp"

namespace sandboxd {

class store;
class sandbox_runtime;
class template_catalog;
class volume_store;

struct registry_config {
  std::shared_ptr<store> db;                 // read for replay only
  std::shared_ptr<sandbox_runtime> runtime;
  std::shared_ptr<const template_catalog> templates;
  // The catalogue templates this server builds as it runs (null: none).
  std::shared_ptr<const catalogue_builds> background_builds;
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
  // The volumes' filesystems (null: volumes are refused).
  std::shared_ptr<volume_store> volumes;
  size_t max_volumes_per_org = 100;
  int64_t volume_size_mb = 1024; // each new volume's filesystem
};

registry_actor spawn_registry(caf::actor_system& sys, registry_config cfg);

} // namespace sandboxd
