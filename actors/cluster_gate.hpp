// The control node's door for worker nodes: admits them (the TLS handshake
// already proved the cluster secret), watches them through CAF monitors, and
// turns a lost node's sandboxes to `error`.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "actors/interfaces.hpp"

namespace sandboxd {

class cluster_runtime;
class store;

struct cluster_gate_config {
  std::shared_ptr<cluster_runtime> runtime;
  registry_actor registry;
  std::shared_ptr<store> db; // which snapshots each node's layers belong to
  // A node the log places sandboxes on that has not joined this long after
  // the start is lost.
  std::chrono::seconds rejoin_grace{60};
  // This node's own capacity now (blocks: run on the executor each tick).
  std::function<node_capacity()> measure_local;
};

cluster_gate_actor spawn_cluster_gate(caf::actor_system& sys, cluster_gate_config cfg);

/// A node name: 1 to 63 of [a-z0-9-], not starting with '-'.
bool valid_node_name(const std::string& name);

} // namespace sandboxd
