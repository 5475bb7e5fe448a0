// The sandbox actor: owns one sandbox's record, TTL timer and container.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/interfaces.hpp"

namespace sandboxd {

class sandbox_runtime;
class store;

/// What a sandbox actor needs from the rest of the system.
struct sandbox_deps {
  std::shared_ptr<sandbox_runtime> runtime;
  std::shared_ptr<store> db; // the sandbox's log lines
  size_t max_snapshots = 100; // of its org (serve --max-snapshots-per-org)
  event_log_actor log;
  registry_actor registry;
  std::string lower_rootfs; // the template's root filesystem
  std::string base_template; // its name in the catalogue (or the org's template's)
  // base_template is a catalogue template: with no layers, any node that
  // built it can run the sandbox; with layers, the node that holds them.
  bool catalogue_template = false;
  std::vector<std::string> layers; // snapshot layers above it, topmost first
  std::string layers_node; // where the layers are (snapshot_info::node)
  // A new sandbox's one-shot agent, started once `created` is logged.
  std::optional<create_spec::agent_launch> launch;
  // The template's start command (the code interpreter's server, or an org's
  // template's), run once `created` is logged and on each cold boot: sh -c as
  // `user` in /workspace, its output in the sandbox's log.
  std::string start_cmd;
  int ready_port = 0; // the start command is up once this port listens inside
};

/// A TTL or idle end that the runtime refused (a pause or kill failed) is
/// tried again this much later, for as long as it fails.
constexpr std::chrono::seconds end_retry{10};

/// Spawns the actor for `rec`: a new sandbox (state creating, then `start`)
/// or one rebuilt from the log (then `reconcile`). While creating,
/// `rec.max_end_ms` holds the hard lifetime as a duration; `start` turns it
/// into the hard end.
sandbox_actor spawn_sandbox(caf::actor_system& sys, sandbox_record rec,
                            sandbox_deps deps);

} // namespace sandboxd
