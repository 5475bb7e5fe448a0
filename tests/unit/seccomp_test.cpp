// runtime/seccomp: the default-deny syscall profile's tables and the OCI
// object made from them, and the program compiled from it (the filter crun
// loads; tests/security/test_syscalls.py runs it for real).
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>
#include <string>

#include "runtime/base64.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/seccomp_bpf.hpp"

using namespace sandboxd;
using nlohmann::json;

namespace {

std::set<std::string> allowed_names() {
  std::set<std::string> out;
  for (auto& e : seccomp_allow_list())
    out.insert(e.names.begin(), e.names.end());
  return out;
}

std::map<std::string, int> refused_names() {
  std::map<std::string, int> out;
  for (auto& e : seccomp_refusals())
    for (auto& n : e.names)
      out[n] = e.errno_value;
  return out;
}

// The profile's rules that name `syscall`.
std::vector<json> rules_for(const std::string& syscall) {
  std::vector<json> out;
  auto profile = seccomp_profile();  // the loop below must not outlive it
  for (auto& r : profile.at("syscalls"))
    for (auto& n : r.at("names"))
      if (n == syscall)
        out.push_back(r);
  return out;
}

}  // namespace

TEST(Seccomp, EveryEntryNamesSyscallsAndSaysWhy) {
  for (auto& e : seccomp_allow_list()) {
    EXPECT_FALSE(e.names.empty());
    EXPECT_FALSE(e.reason.empty()) << e.names.front();
    for (auto& n : e.names)
      EXPECT_FALSE(n.empty());
  }
  for (auto& e : seccomp_refusals()) {
    EXPECT_FALSE(e.names.empty());
    EXPECT_FALSE(e.reason.empty()) << e.names.front();
    EXPECT_GT(e.errno_value, 0) << e.names.front();
  }
}

TEST(Seccomp, NoSyscallIsBothAllowedAndRefusedOrListedTwice) {
  auto refused = refused_names();
  std::set<std::string> seen;
  for (auto& e : seccomp_allow_list())
    for (auto& n : e.names) {
      EXPECT_EQ(refused.count(n), 0u) << n << " is both allowed and refused";
      EXPECT_TRUE(seen.insert(n).second) << n << " is in two allow-list entries";
    }
  std::set<std::string> seen_refused;
  for (auto& e : seccomp_refusals())
    for (auto& n : e.names)
      EXPECT_TRUE(seen_refused.insert(n).second) << n << " is refused twice";
}

TEST(Seccomp, DefaultDenyWithEperm) {
  auto p = seccomp_profile();
  EXPECT_EQ(p.at("defaultAction"), "SCMP_ACT_ERRNO");
  EXPECT_EQ(p.at("defaultErrnoRet"), EPERM);
  auto arches = p.at("architectures");
#if defined(__x86_64__)
  EXPECT_EQ(arches, json({"SCMP_ARCH_X86_64", "SCMP_ARCH_X32"})); // not i386: refused whole
#elif defined(__aarch64__)
  EXPECT_EQ(arches, json({"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"}));
#endif
  // Every rule allows, except those refusing with another errno than the default.
  for (auto& r : p.at("syscalls")) {
    if (r.at("action") == "SCMP_ACT_ALLOW")
      continue;
    EXPECT_EQ(r.at("action"), "SCMP_ACT_ERRNO") << r;
    EXPECT_NE(r.at("errnoRet"), EPERM) << r;
  }
}

TEST(Seccomp, KeyRefusalsArePresentAndNeverAllowed) {
  auto refused = refused_names();
  for (std::string n :
       {"io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key",
        "request_key", "bpf", "perf_event_open", "userfaultfd", "mount", "umount2",
        "pivot_root", "move_mount", "fsopen", "open_tree", "setns", "ptrace",
        "process_vm_readv", "process_vm_writev", "init_module", "finit_module",
        "kexec_load", "open_by_handle_at", "clock_settime", "socketcall"}) {
    ASSERT_EQ(refused.count(n), 1u) << n;
    EXPECT_EQ(refused[n], EPERM) << n;
    EXPECT_TRUE(rules_for(n).empty()) << n << " reaches the profile";
  }
  ASSERT_EQ(refused.count("clone3"), 1u);
  EXPECT_EQ(refused["clone3"], ENOSYS);  // so glibc falls back to clone
  auto clone3 = rules_for("clone3");
  ASSERT_EQ(clone3.size(), 1u);
  EXPECT_EQ(clone3[0].at("action"), "SCMP_ACT_ERRNO");
  EXPECT_EQ(clone3[0].at("errnoRet"), ENOSYS);
}

TEST(Seccomp, CloneAndUnshareOnlyWithoutNamespaceFlags) {
  // CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
  for (uint64_t flag : {0x00020000ull, 0x02000000ull, 0x04000000ull, 0x08000000ull,
                        0x10000000ull, 0x20000000ull, 0x40000000ull}) {
    EXPECT_TRUE(clone_namespace_flags & flag) << std::hex << flag;
    EXPECT_TRUE(unshare_namespace_flags & flag) << std::hex << flag;
  }
  EXPECT_TRUE(unshare_namespace_flags & 0x80);  // CLONE_NEWTIME
  EXPECT_FALSE(clone_namespace_flags & 0xff);   // the exit signal byte of clone(2)
  // Threads and plain forks must still pass.
  for (uint64_t ok : {0x3d0f00ull /* pthread_create */, 0x01200011ull /* fork */})
    EXPECT_FALSE(clone_namespace_flags & ok) << std::hex << ok;
  const std::map<std::string, uint64_t> masks = {{"clone", clone_namespace_flags},
                                                 {"unshare", unshare_namespace_flags}};
  for (auto& [name, mask] : masks) {
    auto rules = rules_for(name);
    ASSERT_EQ(rules.size(), 1u) << name << ": one conditional rule, no unconditional one";
    auto& r = rules[0];
    EXPECT_EQ(r.at("action"), "SCMP_ACT_ALLOW");
    ASSERT_EQ(r.at("args").size(), 1u) << r;
    auto& a = r.at("args")[0];
    EXPECT_EQ(a.at("index"), 0);  // flags: argument 0 on x86, x32, x86_64, arm, aarch64
    EXPECT_EQ(a.at("op"), "SCMP_CMP_MASKED_EQ");
    EXPECT_EQ(a.at("value"), mask);
    EXPECT_EQ(a.at("valueTwo"), 0);
  }
}

TEST(Seccomp, SocketFamiliesAndPersonalitiesAreAllowLists) {
  std::set<uint64_t> families;
  for (auto& r : rules_for("socket")) {
    ASSERT_EQ(r.at("args").size(), 1u) << r;
    EXPECT_EQ(r.at("args")[0].at("op"), "SCMP_CMP_EQ");
    families.insert(r.at("args")[0].at("value").get<uint64_t>());
  }
  EXPECT_EQ(families, (std::set<uint64_t>{1, 2, 10, 16}));  // unix, inet, inet6, netlink
  std::set<uint64_t> personas;
  for (auto& r : rules_for("personality")) {
    ASSERT_EQ(r.at("args").size(), 1u) << r;
    personas.insert(r.at("args")[0].at("value").get<uint64_t>());
  }
  EXPECT_EQ(personas, (std::set<uint64_t>{0, 8, 0x20000, 0x20008, 0xffffffff}));
  EXPECT_EQ(personas.count(0x0040000), 0u);  // ADDR_NO_RANDOMIZE
}

TEST(Seccomp, WhatEveryProgramNeedsIsAllowed) {
  auto allowed = allowed_names();
  for (std::string n :
       {"execve", "exit_group", "brk", "mmap", "mprotect", "munmap", "read", "write",
        "openat", "close", "newfstatat", "statx", "rt_sigaction", "rt_sigreturn", "futex",
        "set_tid_address", "set_robust_list", "rseq", "getrandom", "wait4", "pipe2",
        "dup3", "ioctl", "epoll_pwait", "prlimit64", "setresuid", "setgroups",
        "faccessat2", "close_range", "inotify_add_watch", "memfd_create", "accept4"})
    EXPECT_EQ(allowed.count(n), 1u) << n;
}

// The program crun loads (run.oci.seccomp_bpf_data): loaded here in a child,
// it refuses and allows as the profile says.
TEST(Seccomp, CompiledProgramRefusesAndAllowsAsTheProfileSays) {
  auto program = compile_seccomp(seccomp_profile());
  ASSERT_TRUE(program) << program.error().message;
  ASSERT_EQ(program->size() % sizeof(sock_filter), 0u);
  auto encoded = seccomp_bpf_base64();
  ASSERT_TRUE(encoded);
  EXPECT_EQ(base64::decode(*encoded), *program);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sock_fprog prog{static_cast<unsigned short>(program->size() / sizeof(sock_filter)),
                    reinterpret_cast<sock_filter*>(program->data())};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        || ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
      ::_exit(10);
    // Each check's number is the exit code when it fails.
    errno = 0;
    if (::syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
      ::_exit(11);
    if (::unshare(CLONE_NEWUSER) != -1 || errno != EPERM)
      ::_exit(12);
    if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS)
      ::_exit(13); // refused with ENOSYS: glibc falls back to clone
    if (::syscall(SYS_io_uring_setup, 1, nullptr) != -1 || errno != EPERM)
      ::_exit(14);
    if (::unshare(CLONE_FS) != 0)
      ::_exit(15);
    if (::getpid() <= 0)
      ::_exit(16);
    int fds[2];
    if (::pipe(fds) != 0)
      ::_exit(17);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "check " << WEXITSTATUS(status) << " failed";
}
