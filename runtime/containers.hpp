// Sandboxes as OCI containers run by crun (or any OCI runtime CLI): a
// read-only template root with a per-sandbox overlay, its own namespaces and
// cgroup, and our agent as PID 1. Every call blocks: run it on a worker.
//
// Layout per sandbox under <data>/sandboxes/<id>/:
//   disk.img       the sandbox's own filesystem (its disk size and inode
//                  limit), mounted nosuid,nodev at disk/
//   disk/upper/ disk/work/  overlay layers, stored with the ids they have
//                  inside; disk-mapped/ shows them in the sandbox's id range
//   lower/N/       the template and snapshot layers, idmapped, read-only
//   rootfs         a link to the merged root, mounted at
//                  /run/sandboxd/roots/<data dir hash>/<id>/rootfs: a sandbox's
//                  root resolves that path itself, so it must not cross the
//                  data dir (whose parents may be private, as /root is)
//   id-range       the host uid of root inside
//   agent.sock     the agent's listening socket, bound here by the host and
//                  inherited by the init as fd 3: the sandbox sees no path to it
//   config.json    the OCI bundle     console.log  the init's stdio
#pragma once

#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/fd_closer.hpp"
#include "core/result.hpp"
#include "core/sample.hpp"
#include "runtime/host_limits.hpp"
#include "runtime/id_mapping.hpp"
#include "runtime/launch_namespace.hpp"
#include "runtime/network.hpp"
#include "runtime/sandbox_disk.hpp"
#include "runtime/sandbox_runtime.hpp"
#include "runtime/volume_store.hpp"

namespace sandboxd {

class container_runtime final : public sandbox_runtime {
public:
  /// `runtime_bin`: crun, runc or a path. `agent_bin`: our agent, copied into
  /// the data dir so rebuilding the repo never changes a live sandbox's init.
  container_runtime(std::string runtime_bin, std::string data_dir,
                    std::string agent_bin, network_config network = {});

  /// Where volumes named in a spec are mounted from (none: a spec with
  /// volumes is refused).
  void set_volumes(std::shared_ptr<volume_store> volumes) { volumes_ = std::move(volumes); }

  /// The inode limit of every sandbox's filesystem (serve --sandbox-inodes).
  void set_inode_limit(int64_t inodes) { inodes_ = inodes; }

  /// Keeps `count` sandbox disks of `disk_bytes` (and the inode limit) made
  /// ahead; make_ready_disk makes one, in the background (sandbox_disk.hpp).
  void keep_disks_ready(size_t count, int64_t disk_bytes) {
    disks_.keep_ready(count, {disk_bytes, inodes_});
  }
  bool disks_short() const override { return disks_.short_of_ready(); }
  status make_ready_disk() override { return disks_.make_ready(); }
  size_t ready_disks() const override { return disks_.ready(); }

  /// Checks the runtime works on this host; the failure explains the fix.
  status check_host();

  // The sandbox_runtime interface (documented there).
  status create(const container_spec& spec, bool fresh = true) override;
  status stop(const std::string& id) override;
  status pause(const std::string& id) override;
  status resume(const std::string& id) override;
  status destroy(const std::string& id) override;
  /// The container's init is killed through a pidfd and waited for.
  status terminate(const std::string& id) override;
  /// A server stopping first waits for it (wait_reclaims); a crash leaves
  /// what recovery removes as a container no sandbox owns.
  status reclaim(const std::string& id) override;
  /// Until every reclaim owed has run, or `within` passed (false then).
  bool wait_reclaims(std::chrono::milliseconds within);
  status update_network(const std::string& id, const network_policy& policy) override;
  result<std::string> state(const std::string& id) override;

  /// Removes this data dir's directory under /run once no sandbox is left
  /// in it (sandboxd cleanup).
  void remove_roots_dir();

  /// Those in our own runtime state root.
  result<std::vector<std::string>> list() override;
  status copy_layer(const std::string& id, const std::string& dest) override;
  std::string layers_root() const override { return data_dir_ + "/snapshots"; }
  std::string agent_socket(const std::string& id) const override;
  result<container_sample> sample(const std::string& id, int cpu_count, int memory_mb,
                                  int disk_size_mb) override;

private:
  std::vector<std::string> runtime_cmd(std::vector<std::string> args) const;
  std::string sandbox_dir(const std::string& id) const;
  /// stop, and destroy's first half: the container, network, cgroups and
  /// mounts go; `keep_files` makes sure the disk's contents are on its image.
  status halt(const std::string& id, bool keep_files);
  /// `ids`: the sandbox's user-namespace range (none under gVisor).
  /// `volume_sources`: where each of spec.volumes is bound from.
  std::string bundle_config(const container_spec& spec, std::optional<id_range> ids,
                            const std::vector<std::string>& volume_sources) const;
  /// The sandbox's volumes, each shown in its id range: where the bundle
  /// binds them from, in `sources`; trees to put there at start, in
  /// `trees` (detached), or mounted there on the host's path already.
  status mount_volumes(const container_spec& spec, std::optional<id_range> ids, bool detached,
                       std::vector<std::string>& sources,
                       std::vector<std::pair<fd_closer, std::string>>& trees);
  /// The sandbox's root: its layers and disk shifted into its id range, the
  /// overlay of them. Made of detached trees where the kernel can, it is
  /// handed back in `detached`, mounted nowhere (start mounts it in the
  /// container's launch namespace only); else mounted at rootfs(id).
  status mount_root(const container_spec& spec, std::optional<id_range> ids, fd_closer& detached);
  /// The shifted root from detached layer trees (see runtime/overlay.hpp);
  /// 501 when the kernel cannot, and mount_root mounts each layer instead.
  status mount_root_of_trees(const std::string& id, const std::vector<std::string>& sources,
                             int userns, id_range ids, fd_closer& detached);
  /// The sandbox's running root, through its init's /proc entry, once that
  /// is checked to be the init of this sandbox's container.
  result<fd_closer> running_root(const std::string& id) const;
  /// Adds the egress CA to the trust store under `root` when `policy` has rules.
  status trust_egress_ca(const std::string& root, const network_policy& policy);
  void unmount_root(const std::string& id);
  /// Where the sandbox's merged root is mounted (<dir>/rootfs links there).
  std::string rootfs(const std::string& id) const;
  /// Everything create does, in order; the caller undoes it on a failure.
  status boot(const container_spec& spec);
  /// Runs the container detached, the agent's socket handed over (crun).
  /// `root`, when given, is its detached root: mounted at rootfs(id) in a
  /// copy of the launch namespace, the one crun starts in.
  /// `extra`: detached volume trees and where they go in that namespace.
  status start(const std::string& id, int root = -1,
               const std::vector<std::pair<int, std::string>>& extra = {});
  /// Until the agent answers a ping (10 s).
  status wait_for_agent(const std::string& id);
  /// `fn` with the file-system ids of root inside the sandbox.
  static status as_root_inside(std::optional<id_range> ids, const std::function<status()>& fn);

  std::string runtime_bin_;
  // What runtime_cmd runs: runtime_bin_, or for crun its sealed copy in
  // memory once check_host made one (see sealed_copy).
  std::string runtime_exe_;
  fd_closer sealed_runtime_;
  bool gvisor_; // runsc: a kernel of its own per sandbox, no user namespace or network
  std::string data_dir_;
  std::string state_root_;
  std::string roots_dir_; // /run/sandboxd/roots/<hash of the data dir>
  std::string agent_source_;
  std::string agent_bin_;
  // Tools lent read-only to every sandbox at /.sandboxd/interpreter (the
  // code interpreter's server and kernels); empty when not installed.
  std::string interpreter_dir_;
  std::mutex cpu_mtx_; // previous cpu readings, for usage between samples
  std::map<std::string, std::pair<int64_t, int64_t>> last_cpu_;
  sandbox_network net_;
  sandbox_disks disks_;
  std::shared_ptr<volume_store> volumes_;
  launch_namespace launch_; // made by check_host (crun)
  id_ranges ids_;
  int64_t inodes_ = 262144;
  host_limits host_{0, 0, 1ll << 40, 0}; // what all sandboxes share (check_host)
  std::mutex reclaim_mtx_;
  std::condition_variable reclaim_cv_;
  int64_t reclaims_owed_ = 0; // terminated, not yet reclaimed
};

} // namespace sandboxd
