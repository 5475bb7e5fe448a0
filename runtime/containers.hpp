// Sandboxes as OCI containers run by crun (or any OCI runtime CLI): a
// read-only template root with a per-sandbox overlay, its own namespaces and
// cgroup, and our agent as PID 1. Every call blocks: run it on a worker.
//
// Layout per sandbox under <data>/sandboxes/<id>/:
//   disk.img       the sandbox's own filesystem (its disk size and inode
//                  limit), mounted nosuid,nodev at disk/
//   disk/upper/ disk/work/  overlay layers     rootfs/   the merged root
//   agent.sock     the agent's listening socket, bound here by the host and
//                  inherited by the init as fd 3: the sandbox sees no path to it
//   config.json    the OCI bundle     console.log  the init's stdio
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/sample.hpp"
#include "runtime/host_limits.hpp"
#include "runtime/network.hpp"
#include "runtime/sandbox_disk.hpp"

namespace sandboxd {

struct container_spec {
  std::string id;
  std::string lower_rootfs; // the template, never written
  // Snapshot layers stacked on the template, topmost first (a sandbox made
  // from a snapshot); read-only like the template.
  std::vector<std::string> layers;
  int cpu_count = 2;
  int memory_mb = 512;
  int pids_max = 1024;
  disk_limits disk{10240ll << 20, 0}; // the writable layer's filesystem; 0 inodes: the runtime's
  std::map<std::string, std::string> env;
  network_policy network; // allowInternetAccess + network{allowOut, denyOut}
};


class container_runtime {
public:
  /// `runtime_bin`: crun, runc or a path. `agent_bin`: our agent, copied into
  /// the data dir so rebuilding the repo never changes a live sandbox's init.
  container_runtime(std::string runtime_bin, std::string data_dir,
                    std::string agent_bin, network_config network = {});

  /// The inode limit of every sandbox's filesystem (serve --sandbox-inodes).
  void set_inode_limit(int64_t inodes) { inodes_ = inodes; }

  /// Checks the runtime works on this host; the failure explains the fix.
  status check_host();

  /// Creates and starts the container and waits until its agent answers.
  /// Not `fresh`: starts a stopped sandbox again on its kept files (a cold
  /// resume); a failure then stops it without removing them.
  status create(const container_spec& spec, bool fresh = true);
  /// Removes the container and its mounts but keeps its files (a pause
  /// that frees memory). `create(spec, false)` starts it again.
  status stop(const std::string& id);
  status pause(const std::string& id);
  status resume(const std::string& id);
  /// Removes the container, its network, cgroup, mounts and files. Idempotent.
  status destroy(const std::string& id);
  /// Replaces a live sandbox's egress policy (PUT /sandboxes/:id/network):
  /// 400 for a bad policy, 404 when the sandbox has no network.
  status update_network(const std::string& id, const network_policy& policy);

  /// "running", "paused", "stopped", or 404 when the runtime has no such
  /// container.
  result<std::string> state(const std::string& id);

  /// Ids of every container in our own runtime state root.
  result<std::vector<std::string>> list();

  /// Copies the sandbox's writable layer into `dest` (which must not exist)
  /// as a read-only layer for new sandboxes. The caller freezes the sandbox
  /// first so the copy is consistent.
  status copy_layer(const std::string& id, const std::string& dest);

  /// Where the layer of snapshot `snapshot_id` lives.
  std::string layer_dir(const std::string& snapshot_id) const {
    return data_dir_ + "/snapshots/" + snapshot_id;
  }

  /// The host path of the agent's unix socket for sandbox `id`.
  std::string agent_socket(const std::string& id) const;

  result<container_sample> sample(const std::string& id, int cpu_count,
                                  int memory_mb, int disk_size_mb);

private:
  std::vector<std::string> runtime_cmd(std::vector<std::string> args) const;
  std::string sandbox_dir(const std::string& id) const;
  std::string bundle_config(const container_spec& spec) const;

  std::string runtime_bin_;
  std::string data_dir_;
  std::string state_root_;
  std::string agent_source_;
  std::string agent_bin_;
  std::mutex cpu_mtx_; // previous cpu readings, for usage between samples
  std::map<std::string, std::pair<int64_t, int64_t>> last_cpu_;
  sandbox_network net_;
  sandbox_disks disks_;
  int64_t inodes_ = 262144;
  host_limits host_{0, 0, 1ll << 40, 0}; // what all sandboxes share (check_host)
};

} // namespace sandboxd
