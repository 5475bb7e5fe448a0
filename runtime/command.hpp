// Runs a host program to completion. Output goes to an anonymous file, not a
// pipe: crun's containers inherit its stdio, and a pipe they hold open would
// make the reader wait for the container to exit.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace sandboxd {

struct command_output {
  int exit_code = -1;
  std::string output; // stdout and stderr, interleaved
};

/// Spawns argv[0] (PATH lookup) and waits at most `timeout`, then kills it.
/// `stdio_path`, when set, receives stdout/stderr instead of the capture file
/// (for processes that outlive the call, such as a container's init).
/// `pass_fd`, when set, is fd 3 of the child (`crun run --preserve-fds 1`).
result<command_output>
run_command(const std::vector<std::string>& argv,
            std::chrono::milliseconds timeout = std::chrono::seconds(30),
            const std::string& stdio_path = "", int pass_fd = -1);

/// The executable `name` names: itself when it holds a '/', else the first
/// match on PATH ("" when none).
std::string find_program(const std::string& name);

/// A sealed in-memory copy of the executable `path`, as an fd (close-on-exec)
/// to run as "/proc/self/fd/<fd>". crun started from such a copy skips making
/// a read-only copy of itself on every call (its guard against a container
/// overwriting the host's binary through /proc/<pid>/exe, CVE-2019-5736): a
/// sealed memfd already is that guard.
result<int> sealed_copy(const std::string& path);

} // namespace sandboxd
