#include "runtime/host_limits.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace sandboxd {

namespace {

int64_t read_number(const std::string& path, int64_t fallback) {
  std::ifstream in{path};
  int64_t v = 0;
  return in >> v ? v : fallback;
}

int64_t mem_total_bytes() {
  std::ifstream in{"/proc/meminfo"};
  std::string key, unit;
  int64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemTotal:")
      return kb * 1024;
  return 0;
}

status write_value(const std::string& dir, const std::string& file, int64_t value) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return internal_error("cannot create cgroup " + dir + ": " + ec.message());
  auto path = dir + "/" + file;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  auto text = std::to_string(value);
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  if (fd >= 0)
    ::close(fd);
  if (!ok)
    return internal_error("cannot write " + text + " to " + path + ": " + strerror(err));
  return success();
}

} // namespace

host_limits default_host_limits() {
  host_limits l;
  int64_t pid_max = read_number("/proc/sys/kernel/pid_max", 32768);
  l.pids_max = pid_max - std::max<int64_t>(4096, pid_max / 4);
  int64_t mem = mem_total_bytes();
  l.memory_bytes = mem - std::max<int64_t>(1ll << 30, mem / 10);
  long cpus = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
  l.cpu_quota_us = cpus * 100000 - 25000;
  l.cpu_shares = 256;
  return l;
}

status apply_host_limits(const host_limits& l, const std::string& root) {
  if (auto st = write_value(root + "/pids/sandboxd", "pids.max", l.pids_max); !st)
    return st;
  if (l.memory_bytes > 0)
    if (auto st = write_value(root + "/memory/sandboxd", "memory.limit_in_bytes", l.memory_bytes);
        !st)
      return st;
  // cgroup v1 refuses a parent quota below a child's: sandboxes started
  // before (by an earlier version, or another server) come down first, and
  // once more should one start meanwhile.
  auto cpu = root + "/cpu/sandboxd";
  status quota = success();
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::error_code ec;
    for (auto& child : fs::directory_iterator(cpu, ec)) {
      if (!child.is_directory())
        continue;
      auto q = read_number(child.path().string() + "/cpu.cfs_quota_us", -1);
      if (q > l.cpu_quota_us)
        if (auto st = write_value(child.path().string(), "cpu.cfs_quota_us", l.cpu_quota_us); !st)
          return st;
    }
    if (auto st = write_value(cpu, "cpu.cfs_period_us", 100000); !st)
      return st;
    quota = write_value(cpu, "cpu.cfs_quota_us", l.cpu_quota_us);
    if (quota)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!quota)
    return quota;
  return write_value(root + "/cpu/sandboxd", "cpu.shares", l.cpu_shares);
}

} // namespace sandboxd
