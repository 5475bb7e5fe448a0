// The sandbox's syscall filter: an OCI seccomp profile that refuses every
// syscall with EPERM unless an entry of the allow list names it. Both lists
// are tables of {names, reason}, grouped by what the syscalls are for; the
// refused list records what we deliberately keep out (and why), and only
// its entries whose errno differs from the default reach the profile.
//
// One list serves x86_64 (with its x86 and x32 compat ABIs) and aarch64
// (with 32-bit arm): libseccomp resolves each name per architecture and
// skips the ones an architecture lacks (e.g. `open` on aarch64).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sandboxd {

/// The namespace flags of clone(2)/unshare(2). An unprivileged user
/// namespace brings a full capability set over kernel code that otherwise
/// needs CAP_SYS_ADMIN: the usual first step of a kernel exploit.
/// (CLONE_NEWTIME overlaps the exit-signal byte of clone(2), so it is part
/// of the unshare mask only.)
constexpr uint64_t clone_namespace_flags = 0x7E020000;  // NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
constexpr uint64_t unshare_namespace_flags = clone_namespace_flags | 0x80;  // | NEWTIME

/// Which arguments make an allow-list entry apply.
struct seccomp_condition {
  enum class kind {
    always,            // any arguments
    arg_one_of,        // argument `arg` equals one of `values` (one rule per value)
    arg_without_bits,  // argument `arg` has none of the bits of `values[0]`
  };
  kind when = kind::always;
  unsigned arg = 0;
  std::vector<uint64_t> values;
};

struct seccomp_allowed {
  std::vector<std::string> names;
  std::string reason;
  seccomp_condition condition = {};  // default: any arguments
};

struct seccomp_refused {
  std::vector<std::string> names;
  int errno_value;  // EPERM, or ENOSYS where callers must fall back
  std::string reason;
};

/// Errno of every syscall no allow-list entry lets through.
constexpr int seccomp_default_errno = 1;  // EPERM

const std::vector<seccomp_allowed>& seccomp_allow_list();
const std::vector<seccomp_refused>& seccomp_refusals();

/// The OCI `linux.seccomp` object for this build's architecture family.
nlohmann::json seccomp_profile();

}  // namespace sandboxd
