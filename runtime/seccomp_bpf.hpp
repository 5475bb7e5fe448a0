// The sandbox's seccomp profile compiled to a BPF program once per server,
// as crun would compile it on every start (16 ms of each `crun run` here,
// for ~360 syscalls over three ABIs). crun takes the program ready-made
// through its `run.oci.seccomp_bpf_data` annotation.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace sandboxd {

/// `profile` (an OCI `linux.seccomp` object) as the raw BPF program crun
/// would load for it: unknown syscall names skipped, as crun does.
result<std::string> compile_seccomp(const nlohmann::json& profile);

/// seccomp_profile() compiled once, base64-encoded for the annotation.
const result<std::string>& seccomp_bpf_base64();

} // namespace sandboxd
