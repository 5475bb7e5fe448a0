// What all sandboxes together may take from the host: the parent cgroup
// /sandboxd (every sandbox's cgroup is a child of it) is capped so the
// host and sandboxd itself always keep pids, memory and CPU of their own,
// however many sandboxes spin, fork or allocate at once.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.hpp"

namespace sandboxd {

struct host_limits {
  int64_t pids_max = 0;     // all sandboxes' tasks together
  int64_t memory_bytes = 0; // all sandboxes' memory together
  int64_t cpu_quota_us = 0; // per 100 ms period, all sandboxes together
  int64_t cpu_shares = 0;   // their weight against the host's own tasks
};

/// The defaults for this host: a quarter of pid_max (at least 4,096) kept
/// for the host; memory less max(1 GiB, 10%); CPU less a quarter of one
/// core, at a quarter of the weight of one host task.
host_limits default_host_limits();

/// Writes `limits` into the /sandboxd cgroups (cgroup v1 pids, memory, cpu).
status apply_host_limits(const host_limits& limits, const std::string& cgroup_root = "/sys/fs/cgroup");

} // namespace sandboxd
