#include "runtime/seccomp.hpp"

#include <cerrno>

namespace sandboxd {

namespace {

using kind = seccomp_condition::kind;

seccomp_condition one_of(unsigned arg, std::vector<uint64_t> values) {
  return {kind::arg_one_of, arg, std::move(values)};
}

seccomp_condition without_bits(unsigned arg, uint64_t mask) {
  return {kind::arg_without_bits, arg, {mask}};
}

// Names ending in 32/64/_time64, mmap2, _llseek, _newselect, ugetrlimit,
// send/recv, waitpid, sigreturn, sigprocmask are the 32-bit (x86, arm)
// spellings of the same calls; 64-bit architectures simply lack them.
const std::vector<seccomp_allowed> allow_list = {
  // -- processes and threads ------------------------------------------------
  {{"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
    "waitpid"},
   "starting programs and waiting for them: every shell, the agent itself"},
  {{"clone"},
   "threads and fork (glibc's fork and pthread_create, Python's subprocess and "
   "multiprocessing, node's libuv): allowed only without namespace flags, so no "
   "new user (or other) namespace; on x86, x32, x86_64, arm and aarch64 the flags "
   "are argument 0 (s390 orders them differently and is not supported)",
   without_bits(0, clone_namespace_flags)},
  {{"unshare"},
   "unshare(CLONE_FS / CLONE_FILES / CLONE_SYSVSEM) undoes sharing within the "
   "process; any namespace flag is refused (see clone)",
   without_bits(0, unshare_namespace_flags)},
  {{"getpid", "getppid", "gettid", "getpgid", "getpgrp", "getsid", "setsid", "setpgid"},
   "process ids, sessions and process groups: shells and job control"},
  {{"set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex",
    "futex_time64", "futex_waitv", "futex_wait", "futex_wake", "futex_requeue",
    "membarrier"},
   "thread start-up and synchronisation used by glibc, pthreads, V8 and Chromium"},
  {{"arch_prctl", "set_thread_area", "get_thread_area"},
   "x86 thread-local storage (glibc start-up)"},
  {{"set_tls", "breakpoint", "cacheflush"},
   "arm private calls: thread-local storage, debugger breakpoints and the "
   "instruction-cache flush JIT compilers (V8) need"},
  {{"prctl"},
   "process attributes: names (PR_SET_NAME), death signals, no_new_privs, "
   "dumpable; the agent uses PR_SET_PDEATHSIG. The privileged options check "
   "capabilities the sandbox does not have"},
  {{"capget", "capset"},
   "reading and dropping capabilities (the agent, su, setpriv); capset can "
   "never raise above the bounding set"},
  {{"seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"},
   "self-imposed sandboxes (seccomp filters, Landlock): they only ever narrow "
   "what a process may do (the kernel asks for no_new_privs or CAP_SYS_ADMIN first)"},
  {{"pidfd_open", "pidfd_send_signal"},
   "race-free signalling of own children (Python 3.9+ subprocess, systemd tools)"},

  // -- identity ----------------------------------------------------------------
  {{"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "getuid32", "geteuid32", "getgid32", "getegid32", "getresuid32", "getresgid32",
    "getgroups32"},
   "who am I: every program that checks permissions or prints a prompt"},
  {{"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "setuid32", "setgid32", "setreuid32", "setregid32",
    "setresuid32", "setresgid32", "setgroups32", "setfsuid32", "setfsgid32"},
   "switching users: the agent runs processes as `user`, apt drops to `_apt`, "
   "su/runuser; bounded by CAP_SETUID/CAP_SETGID inside the sandbox's own ids"},

  // -- signals -----------------------------------------------------------------
  {{"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "sigaltstack", "sigreturn", "sigprocmask", "kill", "tkill", "tgkill", "pause",
    "restart_syscall"},
   "signal handling and delivery within the sandbox's own pid namespace"},

  // -- memory ------------------------------------------------------------------
  {{"brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore",
    "msync", "mlock", "mlock2", "munlock", "mlockall", "munlockall"},
   "memory mapping and protection: the loader, malloc, JIT compilers; locking "
   "is bounded by RLIMIT_MEMLOCK and the cgroup"},
  {{"memfd_create"},
   "anonymous files: Chromium's and V8's shared memory, Python's multiprocessing"},
  {{"pkey_alloc", "pkey_free", "pkey_mprotect"},
   "memory protection keys: V8 and Chromium protect JIT code with them when the "
   "CPU has them"},

  // -- files ---------------------------------------------------------------------
  {{"open", "openat", "openat2", "creat", "close", "close_range", "read", "write",
    "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "lseek", "_llseek"},
   "opening, reading and writing files"},
  {{"dup", "dup2", "dup3", "fcntl", "fcntl64", "flock", "ioctl"},
   "descriptor control, locks and device/terminal control (ttys, ptys); "
   "only the devices of the sandbox's device list can be opened"},
  {{"fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "sync_file_range2",
    "arm_sync_file_range", "fallocate", "ftruncate", "ftruncate64", "truncate",
    "truncate64", "fadvise64", "fadvise64_64", "arm_fadvise64_64", "readahead"},
   "durability and file sizes: dpkg syncs every unpacked file, databases "
   "preallocate"},
  {{"sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range"},
   "in-kernel copies: cp, Python's shutil, node's fs.copyFile"},
  {{"stat", "fstat", "lstat", "stat64", "fstat64", "lstat64", "newfstatat",
    "fstatat64", "statx", "statfs", "fstatfs", "statfs64", "fstatfs64", "access",
    "faccessat", "faccessat2"},
   "file metadata; faccessat2 must not fail with EPERM or glibc reports files as "
   "inaccessible"},
  {{"getcwd", "chdir", "fchdir", "chroot"},
   "working directory; chroot is confined by the sandbox's own mount namespace "
   "(CAP_SYS_CHROOT is kept for build tools)"},
  {{"mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
    "renameat2", "link", "linkat", "symlink", "symlinkat", "readlink", "readlinkat",
    "getdents", "getdents64", "mknod", "mknodat"},
   "directories and names; mknod of devices needs CAP_MKNOD, which the sandbox "
   "lacks (fifos and sockets only)"},
  {{"chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "chown32", "fchown32", "lchown32", "umask", "utime", "utimes", "utimensat",
    "utimensat_time64", "futimesat"},
   "permissions, owners and times: dpkg, tar, cp -a"},
  {{"getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr",
    "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr",
    "fremovexattr"},
   "extended attributes (capabilities of files, ACLs) on the sandbox's overlay"},
  {{"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch"},
   "file watching: the agent's watchDir, node's fs.watch"},

  // -- waiting, events, pipes --------------------------------------------------
  {{"pipe", "pipe2", "poll", "ppoll", "ppoll_time64", "select", "_newselect",
    "pselect6", "pselect6_time64", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd",
    "signalfd4"},
   "pipes and event loops: shells, libuv (node), asyncio, Chromium"},
  {{"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64"},
   "Linux AIO (libaio): older and much smaller than io_uring, used by databases"},

  // -- time ----------------------------------------------------------------------
  {{"clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
    "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "gettimeofday", "time",
    "times", "alarm", "getitimer", "setitimer", "timer_create", "timer_delete",
    "timer_settime", "timer_settime64", "timer_gettime", "timer_gettime64",
    "timer_getoverrun", "timerfd_create", "timerfd_settime", "timerfd_settime64",
    "timerfd_gettime", "timerfd_gettime64"},
   "reading clocks, sleeping and timers (setting the clock is refused)"},

  // -- scheduling and resources ------------------------------------------------
  {{"sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
    "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_getattr",
    "sched_setattr", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "getpriority",
    "setpriority", "ioprio_get", "ioprio_set", "getcpu"},
   "scheduling within the sandbox's cgroup: thread pools size themselves with "
   "sched_getaffinity; raising priority needs CAP_SYS_NICE, which is not kept"},
  {{"getrlimit", "setrlimit", "prlimit64", "ugetrlimit", "getrusage", "sysinfo",
    "uname", "getrandom"},
   "limits, usage, system facts and randomness"},

  // -- networking ---------------------------------------------------------------
  {{"socket"},
   "sockets of the families normal programs use: AF_UNIX (1), AF_INET (2), "
   "AF_INET6 (10) and AF_NETLINK (16: getaddrinfo, getifaddrs, Chromium's network "
   "monitor). Every other family is refused: AF_VSOCK reaches the hypervisor "
   "(this host runs in a VM), and AF_ALG, AF_PACKET, AF_KEY, AF_RDS, AF_TIPC, "
   "AF_CAN, AF_XDP, Bluetooth and the rest are rarely used kernel code with a "
   "long history of exploits",
   one_of(0, {1, 2, 10, 16})},
  {{"socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname",
    "getpeername", "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg",
    "recvmsg", "sendmmsg", "recvmmsg", "recvmmsg_time64", "send", "recv", "shutdown"},
   "using sockets; they can only be made by `socket` above (or inherited)"},

  // -- inter-process communication ---------------------------------------------
  {{"shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "msgget", "msgsnd", "msgrcv", "msgctl", "ipc"},
   "System V IPC in the sandbox's own ipc namespace (PostgreSQL, Chromium's X "
   "shared memory); `ipc` is x86's multiplexer for exactly these calls"},
  {{"mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_notify", "mq_getsetattr"},
   "POSIX message queues in the sandbox's own ipc namespace (/dev/mqueue)"},

  // -- execution domain --------------------------------------------------------
  {{"personality"},
   "only the harmless personalities, as Docker allows: PER_LINUX (0), PER_LINUX32 "
   "(8: linux32/setarch), UNAME26 (0x20000), both (0x20008) and the query "
   "(0xffffffff); others (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) weaken "
   "the process's exploit mitigations",
   one_of(0, {0x0, 0x8, 0x20000, 0x20008, 0xffffffff})},
};

const std::vector<seccomp_refused> refusals = {
  {{"clone3"},
   ENOSYS,
   "its flags are behind a pointer the filter cannot read; ENOSYS makes glibc "
   "(2.34+) fall back to clone, whose flags are checked"},
  {{"mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr"},
   EPERM,
   "mounting: the sandbox's filesystem is fixed by its runtime"},
  {{"setns"},
   EPERM,
   "joining other namespaces (unshare and clone with namespace flags are refused "
   "by their allow-list conditions)"},
  {{"keyctl", "add_key", "request_key"},
   EPERM,
   "kernel keyrings are not namespaced and have had many exploits"},
  {{"bpf"},
   EPERM,
   "eBPF: unprivileged programs run verified code in the kernel; the verifier "
   "has been a steady source of privilege escalations"},
  {{"perf_event_open"},
   EPERM,
   "performance counters: a large kernel surface with exploit history, and a "
   "side channel into other tenants"},
  {{"userfaultfd"},
   EPERM,
   "lets a process stall the kernel on a page fault at will: the classic tool "
   "for winning kernel race conditions"},
  {{"io_uring_setup", "io_uring_enter", "io_uring_register"},
   EPERM,
   "io_uring: a second syscall interface the filter cannot see into, with many "
   "kernel CVEs; Docker dropped it from its default profile in 2023 and "
   "libuv, liburing users and others fall back to ordinary syscalls"},
  {{"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "process_madvise"},
   EPERM,
   "tracing and reaching into other processes: kept out as before (no debugger "
   "support) since ptrace is a recurring path for kernel bugs and sandbox escapes"},
  {{"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
    "lookup_dcookie", "uselib", "iopl", "ioperm", "vhangup", "nfsservctl",
    "_sysctl", "create_module", "get_kernel_syms", "query_module"},
   EPERM,
   "host administration and obsolete interfaces: modules, kexec, reboot, swap, "
   "accounting, quotas, the kernel log, raw I/O ports"},
  {{"settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime",
    "clock_adjtime64", "adjtimex"},
   EPERM,
   "setting or tuning the clock, which is the host's"},
  {{"sethostname", "setdomainname"},
   EPERM,
   "the hostname is the sandbox id, set by the runtime"},
  {{"name_to_handle_at", "open_by_handle_at"},
   EPERM,
   "file handles bypass path lookup (the 2014 \"shocker\" container escape)"},
  {{"fanotify_init", "fanotify_mark"},
   EPERM,
   "filesystem-wide monitoring; inotify serves file watching"},
  {{"modify_ldt", "vm86", "vm86old"},
   EPERM,
   "x86 16-bit code and segment tables (Wine, DOS emulators): not needed, with "
   "exploit history"},
  {{"socketcall"},
   EPERM,
   "x86's socket multiplexer passes its arguments by pointer, which would get "
   "around the socket family list; 32-bit programs are not supported"},
  {{"memfd_secret", "get_mempolicy", "set_mempolicy", "mbind",
    "set_mempolicy_home_node", "migrate_pages", "move_pages"},
   EPERM,
   "NUMA placement and secret memory: host memory policy, not the sandbox's "
   "(Docker likewise allows them only with CAP_SYS_NICE)"},
};

// This build's architecture and the compat ABIs its kernel also runs that the
// rules cover. Any other ABI gets the default action for every call
// (compile_seccomp): on x86_64 that is the 32-bit one (int 0x80), whose
// socketcall multiplexer takes its arguments by pointer, where no filter can
// check them: libseccomp turns the `socket` family rules into socketcall
// rules that let every family through (found by e2e security.test_syscalls).
nlohmann::json architectures() {
#if defined(__x86_64__)
  return {"SCMP_ARCH_X86_64", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  return {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
#error "sandboxd's seccomp profile covers x86_64 and aarch64 only"
#endif
}

}  // namespace

const std::vector<seccomp_allowed>& seccomp_allow_list() { return allow_list; }
const std::vector<seccomp_refused>& seccomp_refusals() { return refusals; }

nlohmann::json seccomp_profile() {
  using nlohmann::json;
  json rules = json::array();
  for (auto& entry : allow_list) {
    auto& c = entry.condition;
    switch (c.when) {
      case kind::always:
        rules.push_back({{"names", entry.names}, {"action", "SCMP_ACT_ALLOW"}});
        break;
      case kind::arg_one_of:
        // One rule per value: the conditions of one rule are ANDed.
        for (auto v : c.values)
          rules.push_back({{"names", entry.names},
                           {"action", "SCMP_ACT_ALLOW"},
                           {"args", {{{"index", c.arg}, {"value", v}, {"op", "SCMP_CMP_EQ"}}}}});
        break;
      case kind::arg_without_bits:
        // (arg & value) == valueTwo
        rules.push_back({{"names", entry.names},
                         {"action", "SCMP_ACT_ALLOW"},
                         {"args",
                          {{{"index", c.arg},
                            {"value", c.values.at(0)},
                            {"valueTwo", 0},
                            {"op", "SCMP_CMP_MASKED_EQ"}}}}});
        break;
    }
  }
  for (auto& entry : refusals)
    if (entry.errno_value != seccomp_default_errno)
      rules.push_back({{"names", entry.names},
                       {"action", "SCMP_ACT_ERRNO"},
                       {"errnoRet", entry.errno_value}});
  return {{"defaultAction", "SCMP_ACT_ERRNO"},
          {"defaultErrnoRet", seccomp_default_errno},
          {"architectures", architectures()},
          {"syscalls", rules}};
}

}  // namespace sandboxd
