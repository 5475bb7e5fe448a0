// Sandboxes as OCI containers run by crun (or any OCI runtime CLI): a
// read-only template root with a per-sandbox overlay, its own namespaces and
// cgroup, and our agent as PID 1. Every call blocks: run it on a worker.
//
// Layout per sandbox under <data>/sandboxes/<id>/:
//   upper/ work/   overlay layers     rootfs/   the merged root
//   run/           agent socket dir (bind-mounted at /run/sandboxd)
//   config.json    the OCI bundle     console.log  the init's stdio
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace sandboxd {

struct container_spec {
  std::string id;
  std::string lower_rootfs; // the template, never written
  int cpu_count = 2;
  int memory_mb = 512;
  int pids_max = 1024;
  std::map<std::string, std::string> env;
};

/// A point-in-time reading of a sandbox's cgroup and overlay.
struct container_sample {
  int64_t timestamp_ms = 0;
  int cpu_count = 0;
  double cpu_used_pct = 0;
  int64_t mem_used = 0;
  int64_t mem_total = 0;
  int64_t mem_cache = 0;
  int64_t disk_used = 0;
  int64_t disk_total = 0;
};

class container_runtime {
public:
  /// `runtime_bin`: crun, runc or a path. `agent_bin`: our agent, copied into
  /// the data dir so rebuilding the repo never changes a live sandbox's init.
  container_runtime(std::string runtime_bin, std::string data_dir,
                    std::string agent_bin);

  /// Checks the runtime works on this host; the failure explains the fix.
  status check_host();

  /// Creates and starts the container and waits until its agent answers.
  status create(const container_spec& spec);
  status pause(const std::string& id);
  status resume(const std::string& id);
  /// Removes the container, its cgroup, mounts and files. Idempotent.
  status destroy(const std::string& id);

  /// "running", "paused", "stopped", or 404 when the runtime has no such
  /// container.
  result<std::string> state(const std::string& id);

  /// Ids of every container in our own runtime state root.
  result<std::vector<std::string>> list();

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
};

} // namespace sandboxd
