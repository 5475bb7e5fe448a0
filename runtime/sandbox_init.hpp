// A sandbox's init (our agent, its pid namespace's first process) seen from
// the host, without asking the OCI runtime.
#pragma once

#include <sys/types.h>

#include <string>

namespace sandboxd {

/// The pid the runtime recorded for the init of the sandbox whose host-side
/// directory is `sandbox_dir` (its --pid-file), 0 when there is none.
pid_t recorded_init_pid(const std::string& sandbox_dir);

/// Whether `pid` is a live (not zombie) process in sandbox `id`'s cgroup: a
/// recorded pid may since have gone to another process.
bool is_sandbox_process(pid_t pid, const std::string& id);

} // namespace sandboxd
