// What the actors need of a container runtime, as RocksDB's `DB` stands in
// front of `DBImpl`: the server runs container_runtime (crun,
// runtime/containers.hpp); unit tests run the actors against a fake. Every
// call may block: actors make them on the bounded executor.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/inspect.hpp"
#include "core/result.hpp"
#include "core/sample.hpp"
#include "core/volume.hpp"
#include "runtime/network.hpp"
#include "runtime/sandbox_disk.hpp"

namespace sandboxd {

/// A volume mounted read-write into the sandbox at `path`.
struct spec_volume {
  volume vol;
  std::string path;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, spec_volume& x) {
  return f(caf::meta::type_name("spec_volume"), x.vol, x.path);
}

struct container_spec {
  std::string id;
  std::string lower_rootfs; // the template, never written
  // The catalogue template it is (empty for an org's template: this node
  // only). A worker node resolves its own lower_rootfs from it.
  std::string template_name;
  // Snapshot layers stacked on the template, topmost first (a sandbox made
  // from a snapshot); read-only like the template.
  std::vector<std::string> layers;
  // The node holding those layers: the sandbox runs there (empty: this one).
  std::string layers_node;
  int cpu_count = 2;
  int memory_mb = 512;
  int pids_max = 1024;
  disk_limits disk{10240ll << 20, 0}; // the writable layer's filesystem; 0 inodes: the runtime's
  std::map<std::string, std::string> env;
  network_policy network; // allowInternetAccess + network{allowOut, denyOut}
  std::vector<spec_volume> volumes; // this node's volumes (runtime/volume_store.hpp)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, container_spec& x) {
  return f(caf::meta::type_name("container_spec"), x.id, x.lower_rootfs, x.template_name,
           x.layers, x.layers_node, x.cpu_count, x.memory_mb, x.pids_max, x.disk, caf::meta::omittable(), x.env,
           x.network, x.volumes);
}

class sandbox_runtime {
public:
  virtual ~sandbox_runtime() = default;

  /// Creates and starts the container and waits until its agent answers.
  /// Not `fresh`: starts a stopped sandbox again on its kept files (a cold
  /// resume); a failure then stops it without removing them.
  virtual status create(const container_spec& spec, bool fresh = true) = 0;
  /// Removes the container and its mounts but keeps its files (a pause
  /// that frees memory). `create(spec, false)` starts it again.
  virtual status stop(const std::string& id) = 0;
  virtual status pause(const std::string& id) = 0;
  virtual status resume(const std::string& id) = 0;
  /// Removes the container, its network, cgroup, mounts and files. Idempotent.
  virtual status destroy(const std::string& id) = 0;
  /// A kill's first half, on the caller's path: the container's processes
  /// are gone when it returns, nothing else is removed. Each success owes
  /// one reclaim(id).
  virtual status terminate(const std::string& id) = 0;
  /// A kill's second half, off the caller's path: destroy(id), paying what
  /// terminate owed.
  virtual status reclaim(const std::string& id) = 0;
  /// Replaces a live sandbox's egress policy: 400 for a bad policy, 404
  /// when the sandbox has no network.
  virtual status update_network(const std::string& id, const network_policy& policy) = 0;
  /// "running", "paused", "stopped", or 404 when there is no such container.
  virtual result<std::string> state(const std::string& id) = 0;
  /// Ids of every container this runtime holds.
  virtual result<std::vector<std::string>> list() = 0;
  /// Copies the sandbox's writable layer into `dest` (which must not exist)
  /// as a read-only layer for new sandboxes; the caller freezes it first.
  virtual status copy_layer(const std::string& id, const std::string& dest) = 0;
  /// The directory holding every snapshot's layer (and nothing else).
  virtual std::string layers_root() const = 0;
  /// Removes the layer of snapshot `snapshot_id`, kept on `node` (empty:
  /// this one). Idempotent.
  virtual status remove_layer(const std::string& snapshot_id, const std::string& node);
  /// Where the layer of snapshot `snapshot_id` lives.
  std::string layer_dir(const std::string& snapshot_id) const {
    return layers_root() + "/" + snapshot_id;
  }
  /// The host path of the agent's unix socket for sandbox `id`.
  virtual std::string agent_socket(const std::string& id) const = 0;
  /// The sandbox's cgroup and disk use now.
  virtual result<container_sample> sample(const std::string& id, int cpu_count, int memory_mb,
                                          int disk_size_mb) = 0;
  /// The node sandbox `id` runs on; empty: this one (the only one unless
  /// the runtime is a cluster's, which logs it in `created`).
  virtual std::string node_of(const std::string&) const { return {}; }
  /// The log says sandbox `id` (of `memory_mb`) runs on `node`, empty for
  /// this one (replay, before reconcile).
  virtual void adopt(const std::string&, const std::string&, int) {}
  /// Sandbox disks made ahead: how many are ready, whether fewer than
  /// wanted, and making one (background work of the warm pool).
  virtual size_t ready_disks() const = 0;
  virtual bool disks_short() const = 0;
  virtual status make_ready_disk() = 0;
};

} // namespace sandboxd
