// How a container ends: a kill in two halves (terminate on the caller's
// path, reclaim off it), a stop that keeps the files, a full destroy.
#include "runtime/containers.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/fd_closer.hpp"
#include "core/ids.hpp"
#include "runtime/command.hpp"
#include "runtime/freezer.hpp"
#include "runtime/mount_point.hpp"
#include "runtime/sandbox_init.hpp"

namespace fs = std::filesystem;

namespace sandboxd {

status container_runtime::terminate(const std::string& id) {
  if (!is_valid_sandbox_id(id))
    return internal_error("invalid sandbox id " + id);
  // The init is our agent, the pid namespace's first process: once it is
  // gone the kernel has killed and reaped every other process in it.
  auto kill_init = [&]() -> status {
    pid_t pid = recorded_init_pid(sandbox_dir(id));
    if (pid == 0)
      return internal_error("no init pid");
    fd_closer pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
    if (pidfd.get() < 0)
      return errno == ESRCH ? success() : internal_error(std::string{"pidfd_open: "} + strerror(errno));
    // Another process by now (the init died, its pid was reused): nothing
    // of ours to kill. While our init lives it is in our cgroup.
    if (!is_sandbox_process(pid, id))
      return success();
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) != 0)
      return errno == ESRCH ? success()
                            : internal_error(std::string{"pidfd_send_signal: "} + strerror(errno));
    // A frozen task only dies once thawed: thawed after the signal, so
    // nothing of it runs again.
    if (has_freezer(id))
      if (auto st = thaw(id); !st)
        return st;
    pollfd p{pidfd.get(), POLLIN, 0};
    int r;
    while ((r = ::poll(&p, 1, 2000)) < 0 && errno == EINTR) {
    }
    if (r != 1)
      return internal_error("the sandbox's init did not end within 2 s");
    return success();
  };
  // gVisor's sandbox is more than one process tree: its runtime ends it.
  auto st = gvisor_ ? halt(id, false) : kill_init();
  if (!st && !gvisor_) {
    // The runtime's own way, slower but complete.
    spdlog::warn("sandbox {}: {}; ending it through the runtime", id, st.error().message);
    st = halt(id, false);
  }
  if (st) {
    std::lock_guard<std::mutex> guard{reclaim_mtx_};
    ++reclaims_owed_;
  }
  return st;
}

status container_runtime::reclaim(const std::string& id) {
  auto st = destroy(id);
  {
    std::lock_guard<std::mutex> guard{reclaim_mtx_};
    --reclaims_owed_;
  }
  reclaim_cv_.notify_all();
  return st;
}

bool container_runtime::wait_reclaims(std::chrono::milliseconds within) {
  std::unique_lock<std::mutex> lock{reclaim_mtx_};
  return reclaim_cv_.wait_for(lock, within, [&] { return reclaims_owed_ <= 0; });
}

status container_runtime::stop(const std::string& id) { return halt(id, true); }

status container_runtime::halt(const std::string& id, bool keep_files) {
  if (!is_valid_sandbox_id(id))
    return internal_error("invalid sandbox id " + id);
  std::string failures;
  auto processes_gone = [&] {
    auto now = state(id);
    return now && *now == "stopped";
  };
  if (!gvisor_ && processes_gone()) {
    // Its processes are gone (a kill's reclaim): what `crun delete` would
    // still do is remove its state directory and the cgroups (below),
    // without a process of its own for it.
    std::error_code ec;
    fs::remove_all(state_root_ + "/" + id, ec);
    if (ec)
      failures = "cannot remove the runtime's state of " + id + ": " + ec.message();
  } else {
    auto out = run_command(runtime_cmd({"delete", "--force", id}));
    if (out && out->exit_code != 0 && state(id).ok())
      failures = "delete failed: " + out->output;
  }
  // crun removes the cgroups of a container it knows; one it lost track of
  // (its `crun run` killed at a timeout mid-start) leaves them behind, empty
  // once its processes are gone: removed here, in every hierarchy.
  // Under load its last processes may still be exiting (zombies the host's
  // init has not reaped yet): EBUSY for a moment, retried for up to 1 s.
  std::error_code cg_ec;
  std::vector<fs::path> busy;
  for (auto& h : fs::directory_iterator("/sys/fs/cgroup", cg_ec)) {
    auto cg = h.path() / "sandboxd" / id;
    if (::rmdir(cg.c_str()) == 0 || errno == ENOENT || errno == ENOTDIR)
      continue;
    if (errno == EBUSY)
      busy.push_back(cg);
    else
      spdlog::warn("sandbox {}: cannot remove cgroup {}: {}", id, cg.string(), strerror(errno));
  }
  for (int i = 0; i < 50 && !busy.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    busy.erase(std::remove_if(busy.begin(), busy.end(),
                              [](const fs::path& cg) {
                                return ::rmdir(cg.c_str()) == 0 || errno == ENOENT;
                              }),
               busy.end());
  }
  // Not a failure of the stop: what is left is an empty directory at worst.
  for (auto& cg : busy)
    spdlog::warn("sandbox {}: cannot remove cgroup {}: still busy after 1 s", id, cg.string());
  // After the container: its processes are gone before its rules are.
  if (auto st = net_.teardown(id); !st)
    failures += (failures.empty() ? "" : "; ") + st.error().message;
  auto dir = sandbox_dir(id);
  unmount_root(id);
  // A layer still mounted here must stop a removal of the directory.
  std::error_code ec;
  for (auto& entry : fs::directory_iterator(dir + "/lower", ec))
    if (is_mount_point(entry.path()))
      return internal_error("cannot unmount " + entry.path().string());
  if (auto st = disks_.detach(dir, keep_files); !st)
    return st;
  ids_.release(id);
  ::unlink((dir + "/id-range").c_str());
  {
    std::lock_guard<std::mutex> guard{cpu_mtx_};
    last_cpu_.erase(id);
  }
  if (!failures.empty())
    return internal_error(failures);
  return success();
}

status container_runtime::destroy(const std::string& id) {
  if (auto st = halt(id, false); !st)
    return st;
  auto dir = sandbox_dir(id);
  std::error_code ec;
  fs::remove_all(dir, ec); // the rootfs link goes, not what it points to
  if (ec)
    return internal_error("cannot remove " + dir + ": " + ec.message());
  // Never a recursive removal there: an unmounted root is an empty directory.
  auto root = rootfs(id);
  if ((::rmdir(root.c_str()) != 0 && errno != ENOENT)
      || (::rmdir(fs::path{root}.parent_path().c_str()) != 0 && errno != ENOENT))
    return internal_error("cannot remove " + root + ": " + strerror(errno));
  remove_roots_dir(); // the last one out
  return success();
}

} // namespace sandboxd
