// A worker node's side of the cluster: its runtime as a worker_actor the
// control node drives (each call on this node's bounded executor), and what
// it reports of itself.
#pragma once

#include <memory>
#include <string>

#include "actors/interfaces.hpp"

namespace sandboxd {

class sandbox_runtime;
class template_catalog;

/// Serves `rt` to the control node. A create names a catalogue template,
/// resolved here from `catalog` (built here, never an org's template).
worker_actor spawn_worker(caf::actor_system& sys, std::shared_ptr<sandbox_runtime> rt,
                          std::shared_ptr<const template_catalog> catalog);

/// This host's capacity as node `name`: CPUs, memory, what is free, the
/// containers `rt` holds and the catalogue templates built here. Blocks
/// (reads /proc, lists the runtime): call it off the scheduler.
node_capacity measure_node(const std::string& name, sandbox_runtime& rt,
                           const template_catalog& catalog);

} // namespace sandboxd
