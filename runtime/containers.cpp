#include "runtime/containers.hpp"
#include "runtime/egress_ca.hpp"
#include "runtime/egress_proxy.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/clock.hpp"
#include "core/crypto.hpp"
#include "core/ids.hpp"
#include "core/stopwatch.hpp"
#include "runtime/agent_client.hpp"
#include "runtime/command.hpp"
#include "runtime/freezer.hpp"
#include "runtime/host_limits.hpp"
#include "runtime/mount_point.hpp"
#include "runtime/overlay.hpp"
#include "runtime/sandbox_init.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/seccomp_bpf.hpp"
#include "core/fd_closer.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sandboxd {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Capabilities kept: the usual container set, enough for the agent to switch
// users and own files, nothing that reaches the host.
const std::vector<std::string> kept_caps = {
  "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
  "CAP_SETGID", "CAP_SETUID",       "CAP_SETPCAP",          "CAP_NET_BIND_SERVICE",
  "CAP_KILL",   "CAP_SYS_CHROOT",   "CAP_AUDIT_WRITE",      "CAP_SETFCAP",
};

std::string bind_source_error(const std::string& what, const std::string& p) {
  return what + " " + p + ": " + strerror(errno);
}

// The agent's listening socket, bound by us in the sandbox's host-side
// directory (never mounted into the sandbox) and handed to its init as fd 3:
// nothing inside can replace or redirect what the host connects to. The fd
// returned is close-on-exec and >= 10, so it is fd 3 only in crun's child.
result<int> listen_for_agent(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return internal_error("agent socket path too long: " + path);
  std::memcpy(addr.sun_path, path.data(), path.size());
  ::unlink(path.c_str()); // a cold resume binds again
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return internal_error(std::string{"socket: "} + strerror(errno));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
      || ::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 128) != 0) {
    auto err = bind_source_error("cannot listen on", path);
    ::close(fd);
    return internal_error(err);
  }
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  if (high < 0)
    return internal_error(std::string{"fcntl: "} + strerror(errno));
  return high;
}

// Written for the host only: a sandbox's config holds its env vars.
status write_private(const std::string& path, const std::string& text) {
  ::unlink(path.c_str());
  fd_closer fd{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
  if (fd.get() < 0 || ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return internal_error(bind_source_error("cannot write", path));
  return success();
}

// Each sandbox's ids 0..65535 map onto one of these host ranges: inside the
// range systemd documents for containers (524288..1879048191), 8192 ranges
// from 2^30. The lock file is shared by every sandboxd on the host.
constexpr uint32_t first_sandbox_uid = 1u << 30;
constexpr uint32_t sandbox_id_ranges = 8192;
constexpr const char* id_range_locks = "/run/sandboxd/id-ranges.lock";
constexpr const char* roots_parent = "/run/sandboxd/roots";

void unmount(const std::string& path) {
  ::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
}

// A content-addressed copy of the interpreter's files from `source` (beside
// the agent) in `runtime_dir`, readable by every sandbox user: a live sandbox
// keeps the version it started with. Empty when there is none.
std::string install_interpreter(const fs::path& source, const std::string& runtime_dir) {
  std::error_code ec;
  if (!fs::is_directory(source, ec))
    return {};
  std::map<std::string, std::string> files; // relative path -> content
  for (auto& e : fs::recursive_directory_iterator(source, ec))
    if (e.is_regular_file())
      files[e.path().lexically_relative(source).string()] = read_file(e.path());
  std::string canon;
  for (auto& [name, bytes] : files)
    canon += name + '\0' + std::to_string(bytes.size()) + '\0' + bytes;
  auto dir = runtime_dir + "/interpreter-" + sha256_hex(canon).substr(0, 16);
  if (fs::exists(dir, ec))
    return dir;
  auto tmp = dir + ".tmp";
  fs::remove_all(tmp, ec);
  for (auto& [name, bytes] : files) {
    auto path = fs::path(tmp) / name;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream out{path, std::ios::binary};
    out << bytes;
    if (!out.flush()) {
      spdlog::warn("cannot install the code interpreter's {}", path.string());
      fs::remove_all(tmp, ec);
      return {};
    }
  }
  for (auto& e : fs::recursive_directory_iterator(tmp, ec))
    ::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0644);
  ::chmod(tmp.c_str(), 0755);
  fs::rename(tmp, dir, ec);
  return ec ? std::string{} : dir;
}

} // namespace

container_runtime::container_runtime(std::string runtime_bin,
                                     std::string data_dir,
                                     std::string agent_bin,
                                     network_config network)
  : runtime_bin_(std::move(runtime_bin)),
    runtime_exe_(runtime_bin_),
    gvisor_(fs::path(runtime_bin_).filename() == "runsc"),
    data_dir_(std::move(data_dir)),
    state_root_(data_dir_ + "/runtime/state"),
    agent_source_(std::move(agent_bin)),
    net_(std::move(network)),
    disks_(data_dir_ + "/runtime/disks"),
    ids_(id_range_locks, first_sandbox_uid, sandbox_id_ranges) {
  std::error_code ec;
  fs::create_directories(state_root_, ec);
  fs::create_directories(data_dir_ + "/sandboxes", ec);
  // Keys, the event log, snapshots: for the host's root only.
  fs::create_directories(data_dir_ + "/snapshots", ec);
  fs::create_directories(data_dir_ + "/templates", ec);
  ::chmod(data_dir_.c_str(), 0700);
  for (auto& entry : fs::directory_iterator(data_dir_, ec))
    ::chmod(entry.path().c_str(), entry.is_directory() ? 0700 : 0600);
  // A sandbox's root (an unprivileged host uid) resolves the path to its
  // root filesystem itself, wherever the data dir lives (/root is 0700):
  // the merged roots are mounted under /run, on traversable directories.
  roots_dir_ = std::string{roots_parent} + "/"
               + sha256_hex(fs::absolute(data_dir_).lexically_normal().string()).substr(0, 12);
  // It exists while one of our sandboxes has a root in it (made by boot,
  // removed by the destroy that empties it).
  fs::create_directories(roots_parent, ec);
  for (auto d : {"/run/sandboxd", roots_parent})
    ::chmod(d, 0711);
  // Content-addressed copy of the agent: live sandboxes keep theirs.
  auto bytes = read_file(agent_source_);
  agent_bin_ = data_dir_ + "/runtime/agent-" + sha256_hex(bytes).substr(0, 16);
  if (!bytes.empty() && !fs::exists(agent_bin_)) {
    auto tmp = agent_bin_ + ".tmp";
    {
      std::ofstream out{tmp, std::ios::binary};
      out << bytes;
    }
    ::chmod(tmp.c_str(), 0755);
    fs::rename(tmp, agent_bin_, ec);
  }
  interpreter_dir_ = install_interpreter(fs::path(agent_source_).parent_path() / "interpreter",
                                         data_dir_ + "/runtime");
}

std::vector<std::string>
container_runtime::runtime_cmd(std::vector<std::string> args) const {
  std::vector<std::string> argv{runtime_exe_, "--root", state_root_};
  if (gvisor_) {
    // No network (its netstack reads the interfaces only at boot, before
    // ours exist); writes go to the sandbox's disk, not to memory; the agent
    // may create its socket in the one host directory lent to it.
    for (auto flag : {"--network=none", "--overlay2=none", "--host-uds=create"})
      argv.emplace_back(flag);
  }
  for (auto& a : args)
    argv.push_back(std::move(a));
  return argv;
}

std::string container_runtime::sandbox_dir(const std::string& id) const {
  return data_dir_ + "/sandboxes/" + id;
}

std::string container_runtime::rootfs(const std::string& id) const {
  return roots_dir_ + "/" + id + "/rootfs";
}

std::string container_runtime::agent_socket(const std::string& id) const {
  // gVisor cannot inherit a listening fd: its agent binds in a directory of
  // its own, which the host then reaches without following links.
  return sandbox_dir(id) + (gvisor_ ? "/agent/agent.sock" : "/agent.sock");
}

status container_runtime::check_host() {
  // Unix socket paths hold at most 107 bytes; each sandbox's lives here.
  auto longest = agent_socket(std::string(20, 'x'));
  if (longest.size() >= sizeof(sockaddr_un::sun_path))
    return bad_request("the data dir path is too long for the sandboxes' unix sockets ("
                       + std::to_string(longest.size()) + " of at most "
                       + std::to_string(sizeof(sockaddr_un::sun_path) - 1)
                       + " bytes): choose a shorter --data-dir");
  if (!fs::exists(agent_bin_) || fs::file_size(agent_bin_) == 0)
    return internal_error("agent binary missing or empty: " + agent_source_);
  auto out = run_command({runtime_bin_, "--version"}, std::chrono::seconds(10));
  if (!out || out->exit_code != 0)
    return internal_error("OCI runtime '" + runtime_bin_
                          + "' is not usable; install crun (apt-get install crun)");
  if (auto st = net_.check_host(); !st)
    return st;
  if (auto& bpf = seccomp_bpf_base64(); !gvisor_ && !bpf)
    return bpf.error();
  if (!gvisor_ && sealed_runtime_.get() < 0) {
    auto path = find_program(runtime_bin_);
    auto sealed = path.empty() ? result<int>{not_found(runtime_bin_ + " is not on PATH")}
                               : sealed_copy(path);
    if (sealed) {
      sealed_runtime_ = fd_closer{*sealed};
      runtime_exe_ = "/proc/self/fd/" + std::to_string(*sealed);
    } else {
      spdlog::warn("crun runs from its file, each start copying itself first: {}",
                   sealed.error().message);
    }
  }
  // All sandboxes together leave pids, memory and CPU to the host.
  host_ = default_host_limits();
  if (auto st = apply_host_limits(host_); !st)
    return st;
  // The ranges our live sandboxes run in, held again after a restart; one
  // another server took meanwhile would be shared, so that sandbox stops.
  std::error_code ec;
  for (auto& entry : fs::directory_iterator(data_dir_ + "/sandboxes", ec)) {
    auto id = entry.path().filename().string();
    auto text = read_file(entry.path() / "id-range");
    if (!is_valid_sandbox_id(id) || text.empty() || !state(id))
      continue;
    auto adopted = ids_.adopt(id, id_range{static_cast<uint32_t>(std::stoul(text))});
    if (!adopted) {
      spdlog::error("sandbox {} stops: {}", id, adopted.error().message);
      if (auto st = stop(id); !st)
        spdlog::error("sandbox {}: {}", id, st.error().message);
    }
  }
  // Policy chains left by sandboxes that are gone (crashes, killed netns).
  if (auto swept = net_.sweep(); !swept)
    return swept.error();
  if (!gvisor_ && overlay_takes_fds()) {
    if (auto st = launch_.make({data_dir_ + "/sandboxes", roots_dir_}); !st)
      spdlog::warn("containers start from the host's mount namespace, each copying every "
                   "mount there: {}", st.error().message);
  }
  return success();
}

result<fd_closer> container_runtime::running_root(const std::string& id) const {
  int pid = std::atoi(read_file(sandbox_dir(id) + "/init.pid").c_str());
  if (pid <= 0)
    return failure{409, "sandbox " + id + " is not running"};
  // The /proc entry is held open: should the init exit and its pid be
  // reused, what it leads to is gone rather than another process's.
  fd_closer proc{::open(("/proc/" + std::to_string(pid)).c_str(),
                        O_PATH | O_DIRECTORY | O_CLOEXEC)};
  if (proc.get() < 0)
    return failure{409, "sandbox " + id + " is not running"};
  fd_closer cgroup{::openat(proc.get(), "cgroup", O_RDONLY | O_CLOEXEC)};
  char buf[4096];
  auto n = cgroup.get() >= 0 ? ::read(cgroup.get(), buf, sizeof buf - 1) : -1;
  if (n <= 0 || std::string(buf, static_cast<size_t>(n)).find("/sandboxd/" + id + "\n")
                  == std::string::npos)
    return failure{409, "sandbox " + id + " is not running"};
  fd_closer root{::openat(proc.get(), "root", O_PATH | O_DIRECTORY | O_CLOEXEC)};
  if (root.get() < 0)
    return internal_error(errno_text("open the root of sandbox " + id));
  return root;
}

std::string container_runtime::bundle_config(const container_spec& spec,
                                             std::optional<id_range> ids,
                                             const std::vector<std::string>& volume_sources) const {
  json env = json::array();
  for (auto& [k, v] : spec.env)
    env.push_back(k + "=" + v);
  json devices = json::array({{{"allow", false}, {"access", "rwm"}}});
  auto allow_dev = [&](const char* type, int major, int minor) {
    json d = {{"allow", true}, {"type", type}, {"major", major}, {"access", "rwm"}};
    if (minor >= 0)
      d["minor"] = minor;
    devices.push_back(d);
  };
  for (int minor : {3, 5, 7, 8, 9})
    allow_dev("c", 1, minor);
  for (int minor : {0, 1, 2})
    allow_dev("c", 5, minor);
  allow_dev("c", 136, -1);
  json caps = kept_caps;
  auto dir = sandbox_dir(spec.id);
  json cfg = {
    {"ociVersion", "1.0.2"},
    {"process",
     {{"terminal", false},
      {"user", {{"uid", 0}, {"gid", 0}}},
      {"args", {"/.sandboxd/agent", "--listen-fd", "3"}},
      {"env", env},
      {"cwd", "/"},
      {"capabilities",
       {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      // Off, so that `sudo` works for `user` as on E2B: root inside is no
      // more than the API already grants (commands may run as root), it is
      // an unprivileged id range outside, and the capability bounding set
      // and the seccomp list hold for it as for everything inside.
      {"noNewPrivileges", false}}},
    {"root", {{"path", rootfs(spec.id)}, {"readonly", false}}},
    {"hostname", spec.id},
    {"mounts",
     json::array({
       {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
       {{"destination", "/dev"},
        {"type", "tmpfs"},
        {"source", "tmpfs"},
        {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
       {{"destination", "/dev/pts"},
        {"type", "devpts"},
        {"source", "devpts"},
        {"options",
         {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
       {{"destination", "/dev/shm"},
        {"type", "tmpfs"},
        {"source", "shm"},
        {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
       {{"destination", "/dev/mqueue"},
        {"type", "mqueue"},
        {"source", "mqueue"},
        {"options", {"nosuid", "noexec", "nodev"}}},
       {{"destination", "/sys"},
        {"type", "sysfs"},
        {"source", "sysfs"},
        {"options", {"nosuid", "noexec", "nodev", "ro"}}},
       {{"destination", "/.sandboxd/agent"},
        {"type", "bind"},
        {"source", agent_bin_},
        {"options", {"bind", "ro", "nosuid", "nodev"}}},
     })},
    {"linux",
     {{"namespaces",
       json::array({{{"type", "pid"}},
                    {{"type", "ipc"}},
                    {{"type", "uts"}},
                    {{"type", "mount"}},
                    {{"type", "network"}}})},
      {"cgroupsPath", "/sandboxd/" + spec.id},
      {"resources",
       {{"devices", devices},
        {"memory",
         {{"limit", static_cast<int64_t>(spec.memory_mb) * 1024 * 1024},
          {"swap", static_cast<int64_t>(spec.memory_mb) * 1024 * 1024}}},
        // cgroup v1 refuses a child quota above its parent's (EINVAL).
        {"cpu", {{"quota", std::min<int64_t>(spec.cpu_count * 100000ll, host_.cpu_quota_us)},
                 {"period", 100000}}},
        {"pids", {{"limit", spec.pids_max}}}}},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
        "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}},
      {"readonlyPaths",
       {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
      {"seccomp", seccomp_profile()}}},
  };
  if (ids) {
    json map = json::array({{{"containerID", 0}, {"hostID", ids->base}, {"size", id_range_size}}});
    cfg["linux"]["namespaces"].push_back({{"type", "user"}});
    cfg["linux"]["uidMappings"] = map;
    cfg["linux"]["gidMappings"] = map;
  }
  if (!gvisor_)
    cfg["mounts"].push_back({{"destination", "/proc/sys/kernel/random/boot_id"},
                             {"type", "bind"},
                             {"source", dir + "/boot_id"},
                             {"options", {"bind", "ro", "nosuid", "nodev", "noexec"}}});
  if (!interpreter_dir_.empty())
    cfg["mounts"].push_back({{"destination", "/.sandboxd/interpreter"},
                             {"type", "bind"},
                             {"source", interpreter_dir_},
                             {"options", {"bind", "ro", "nosuid", "nodev"}}});
  for (size_t i = 0; i < spec.volumes.size() && i < volume_sources.size(); ++i)
    cfg["mounts"].push_back({{"destination", spec.volumes[i].path},
                             {"type", "bind"},
                             {"source", volume_sources[i]},
                             {"options", {"rbind", "rw", "nosuid", "nodev"}}});
  // crun loads the profile compiled once here rather than compiling it on
  // every start (check_host made sure it compiles).
  if (auto& bpf = seccomp_bpf_base64(); bpf && !gvisor_) {
    cfg["annotations"] = {{"run.oci.seccomp_bpf_data", *bpf}};
    cfg["linux"].erase("seccomp");
  }
  if (gvisor_) {
    cfg["process"]["args"] = {"/.sandboxd/agent", "--socket", "/run/sandboxd/agent.sock"};
    // gVisor's kernel answers the sandbox's syscalls; runsc filters what
    // that kernel may ask of the host, and ignores this profile.
    cfg["linux"].erase("seccomp");
    cfg["mounts"].push_back({{"destination", "/run/sandboxd"},
                             {"type", "bind"},
                             {"source", dir + "/agent"},
                             {"options", {"bind", "rw", "nosuid", "nodev", "noexec"}}});
  }
  return cfg.dump(2);
}

status container_runtime::create(const container_spec& spec, bool fresh) {
  if (!is_valid_sandbox_id(spec.id))
    return internal_error("invalid sandbox id " + spec.id);
  if (auto st = validate(spec.network); !st)
    return st;
  auto st = boot(spec);
  // A failed start takes back what it made; a restart keeps the files.
  if (!st) {
    if (auto undone = fresh ? destroy(spec.id) : stop(spec.id); !undone)
      spdlog::warn("sandbox {}: cleaning up after a failed start: {}", spec.id,
                   undone.error().message);
  }
  return st;
}

status container_runtime::boot(const container_spec& spec) {
  stopwatch watch;
  auto dir = sandbox_dir(spec.id);
  auto root_dir = fs::path{rootfs(spec.id)}.parent_path().string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return internal_error("cannot create " + dir + ": " + ec.message());
  // A kill emptying the roots directory may remove it under us: again then.
  auto made = [&] {
    std::error_code probe;
    return fs::is_directory(rootfs(spec.id), probe);
  };
  for (int attempt = 0; attempt < 3 && !made(); ++attempt)
    fs::create_directories(rootfs(spec.id), ec);
  if (!made())
    return internal_error("cannot create " + rootfs(spec.id) + ": " + ec.message());
  ::chmod(roots_dir_.c_str(), 0711); // passable, not listable
  ::chmod(dir.c_str(), 0700);
  ::chmod(root_dir.c_str(), 0700);
  // The host's way to the sandbox's root from its directory.
  if (::symlink(rootfs(spec.id).c_str(), (dir + "/rootfs").c_str()) != 0 && errno != EEXIST)
    return internal_error(bind_source_error("cannot link", dir + "/rootfs"));
  auto limits = spec.disk;
  if (limits.inodes <= 0)
    limits.inodes = inodes_;
  watch.lap("dirs");
  if (auto st = disks_.attach(dir, limits); !st)
    return st;
  watch.lap("disk");
  // gVisor's kernel is the boundary there and shows host ids as they are:
  // its sandboxes keep the ids they have inside, unshifted.
  std::optional<id_range> ids;
  if (!gvisor_) {
    auto got = ids_.acquire(spec.id);
    if (!got)
      return got.error();
    ids = *got;
    // Only the sandbox's root group (its init, on the way to its rootfs) may
    // pass through: no other host user reaches its files or setuid binaries.
    if (::chown(root_dir.c_str(), 0, ids->base) != 0 || ::chmod(root_dir.c_str(), 0710) != 0)
      return internal_error(bind_source_error("cannot hand over", root_dir));
    // Kept beside the sandbox so a restarted server adopts the range it runs in.
    if (auto st = write_private(dir + "/id-range", std::to_string(ids->base)); !st)
      return st;
  }
  watch.lap("ids");
  fd_closer root;
  if (auto st = mount_root(spec, ids, root); !st)
    return st;
  // Until start mounts it, the root is reached through its fd.
  auto root_path = root.get() >= 0 ? "/proc/self/fd/" + std::to_string(root.get()) : rootfs(spec.id);
  watch.lap("mounts");
  // Every boot its own boot id (a resume without memory is a new boot), and
  // never the host's: shown over /proc/sys/kernel/random/boot_id.
  if (!gvisor_) {
    if (auto st = write_private(dir + "/boot_id", new_uuid() + "\n"); !st)
      return st;
    ::chmod((dir + "/boot_id").c_str(), 0444);
  }
  std::vector<std::string> volume_sources;
  std::vector<std::pair<fd_closer, std::string>> volume_trees;
  if (auto st = mount_volumes(spec, ids, root.get() >= 0, volume_sources, volume_trees); !st)
    return st;
  if (auto st = write_private(dir + "/config.json", bundle_config(spec, ids, volume_sources)); !st)
    return st;
  auto resolv = as_root_inside(ids, [&]() -> status {
    if (auto st = net_.write_resolv_conf(root_path, spec.network); !st)
      return st;
    return trust_egress_ca(root_path, spec.network);
  });
  if (!resolv)
    return resolv;
  watch.lap("config");
  std::vector<std::pair<int, std::string>> extra;
  for (auto& [tree, target] : volume_trees)
    extra.emplace_back(tree.get(), target);
  if (auto st = start(spec.id, root.get(), extra); !st)
    return st;
  watch.lap("runtime");
  // The network, while the agent starts: veth, address, NAT, policy.
  int pid = std::atoi(read_file(dir + "/init.pid").c_str());
  if (!gvisor_) {
    if (auto st = net_.setup(spec.id, pid, spec.network); !st)
      return st;
  }
  watch.lap("network");
  auto agent = wait_for_agent(spec.id);
  watch.lap("agent");
  spdlog::debug("sandbox {} booted: {}", spec.id, watch.summary());
  return agent;
}

status container_runtime::mount_volumes(const container_spec& spec, std::optional<id_range> ids,
                                        bool detached, std::vector<std::string>& sources,
                                        std::vector<std::pair<fd_closer, std::string>>& trees) {
  if (spec.volumes.empty())
    return success();
  if (!volumes_)
    return failure{501, "this node keeps no volumes"};
  fd_closer ns;
  if (ids) {
    auto userns = user_namespace_fd(*ids);
    if (!userns)
      return userns.error();
    ns = fd_closer{*userns};
  }
  auto dir = sandbox_dir(spec.id);
  for (size_t i = 0; i < spec.volumes.size(); ++i) {
    auto host = volumes_->mount(spec.volumes[i].vol);
    if (!host)
      return host.error();
    if (!ids) { // gVisor: its kernel shows host ids as they are, unshifted
      sources.push_back(*host);
      continue;
    }
    auto target = dir + "/volumes/" + std::to_string(i);
    std::error_code ec;
    fs::create_directories(target, ec);
    if (ec)
      return internal_error("cannot create " + target + ": " + ec.message());
    ::chmod((dir + "/volumes").c_str(), 0700);
    auto tree = idmapped_tree(*host, ns.get(), false);
    if (!tree)
      return tree.error();
    fd_closer fd{*tree};
    if (detached) {
      trees.emplace_back(std::move(fd), target);
    } else if (auto st = attach_mount(fd.get(), target, "a volume"); !st) {
      return st;
    }
    sources.push_back(target);
  }
  return success();
}

status container_runtime::start(const std::string& id, int root,
                                const std::vector<std::pair<int, std::string>>& extra) {
  auto dir = sandbox_dir(id);
  std::vector<std::string> run{"run", "--detach"};
  int listener = -1;
  if (!gvisor_) {
    auto bound = listen_for_agent(agent_socket(id));
    if (!bound)
      return bound.error();
    listener = *bound;
    run.insert(run.end(), {"--preserve-fds", "1"});
  } else {
    std::error_code ec;
    fs::remove_all(dir + "/agent", ec);
    fs::create_directories(dir + "/agent", ec);
    if (ec)
      return internal_error("cannot create " + dir + "/agent: " + ec.message());
  }
  run.insert(run.end(), {"--pid-file", dir + "/init.pid", "--bundle", dir, id});
  result<command_output> out = internal_error("crun did not run");
  auto run_it = [&]() -> status {
    out = run_command(runtime_cmd(std::move(run)), std::chrono::seconds(30),
                      dir + "/console.log", listener);
    return success();
  };
  auto launched = root >= 0 ? launch_.run_with_root(root, rootfs(id), run_it, extra) : run_it();
  if (listener >= 0)
    ::close(listener);
  if (!launched)
    return launched;
  if (!out || out->exit_code != 0)
    return internal_error("container start failed: "
                          + (out ? read_file(dir + "/console.log") : out.error().message));
  return success();
}

status container_runtime::wait_for_agent(const std::string& id) {
  // Under crun the connection waits in the inherited listener's backlog
  // until the agent accepts; under gVisor the socket appears once the agent
  // has bound it, so a refused or missing socket is retried until then.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now());
    auto pong = agent::call(agent_socket(id), {{"op", "ping"}},
                            gvisor_ ? std::min(left, std::chrono::milliseconds(1000)) : left);
    if (pong)
      return success();
    if (!gvisor_ || std::chrono::steady_clock::now() >= until)
      return internal_error("sandbox agent did not start: " + pong.error().message + "; "
                            + read_file(sandbox_dir(id) + "/console.log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

status container_runtime::as_root_inside(std::optional<id_range> ids,
                                         const std::function<status()>& fn) {
  return ids ? as_range_root(*ids, fn) : fn();
}

status container_runtime::mount_root(const container_spec& spec, std::optional<id_range> ids,
                                     fd_closer& detached) {
  auto dir = sandbox_dir(spec.id);
  unmount_root(spec.id); // what a failed stop may have left
  if (!ids) {
    // Unshifted: the layers as they are, the disk's upper and work as is.
    std::string lowers;
    for (auto& layer : spec.layers)
      lowers += layer + ":";
    auto disk = sandbox_disks::mount_point(dir);
    auto opts = "lowerdir=" + lowers + spec.lower_rootfs + ",upperdir=" + disk
                + "/upper,workdir=" + disk + "/work";
    if (::mount("overlay", rootfs(spec.id).c_str(), "overlay", 0, opts.c_str()) != 0)
      return internal_error(bind_source_error("mount overlay on", rootfs(spec.id)));
    return success();
  }
  auto userns = user_namespace_fd(*ids);
  if (!userns)
    return userns.error();
  fd_closer ns{*userns};
  // Every layer read-only and shifted into the sandbox's range, topmost first.
  std::vector<std::string> sources = spec.layers;
  sources.push_back(spec.lower_rootfs);
  if (overlay_takes_fds()) {
    auto st = mount_root_of_trees(spec.id, sources, ns.get(), *ids, detached);
    if (st || st.error().status != 501)
      return st;
  }
  std::string lowers;
  std::error_code ec;
  for (size_t i = 0; i < sources.size(); ++i) {
    auto target = dir + "/lower/" + std::to_string(i);
    fs::create_directories(target, ec);
    if (ec)
      return internal_error("cannot create " + target + ": " + ec.message());
    if (auto st = idmapped_mount(sources[i], target, ns.get(), true); !st)
      return st;
    lowers += (i ? ":" : "") + target;
  }
  ::chmod((dir + "/lower").c_str(), 0700);
  // The sandbox's own disk, shifted the same way, holds upper and work.
  auto mapped = dir + "/disk-mapped";
  fs::create_directories(mapped, ec);
  if (ec)
    return internal_error("cannot create " + mapped + ": " + ec.message());
  if (auto st = idmapped_mount(sandbox_disks::mount_point(dir), mapped, ns.get(), false); !st)
    return st;
  auto opts = "lowerdir=" + lowers + ",upperdir=" + mapped + "/upper,workdir=" + mapped + "/work";
  // Mounted as the range's root: the overlay writes its upper layer with the
  // creds of whoever mounted it, and host root has no id in the range.
  return as_range_root(*ids, [&]() -> status {
    if (::mount("overlay", rootfs(spec.id).c_str(), "overlay", 0, opts.c_str()) != 0)
      return internal_error(bind_source_error("mount overlay on", rootfs(spec.id)));
    return success();
  });
}

status container_runtime::mount_root_of_trees(const std::string& id,
                                             const std::vector<std::string>& sources, int userns,
                                             id_range ids, fd_closer& detached) {
  std::vector<fd_closer> trees;
  std::vector<int> lowers;
  for (auto& source : sources) {
    auto tree = idmapped_tree(source, userns, true);
    if (!tree)
      return tree.error();
    trees.emplace_back(*tree);
    lowers.push_back(*tree);
  }
  auto disk = sandbox_disks::mount_point(sandbox_dir(id));
  auto mapped = idmapped_tree(disk, userns, false);
  if (!mapped)
    return mapped.error();
  fd_closer tree{*mapped};
  fd_closer upper{::openat(tree.get(), "upper", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  fd_closer work{::openat(tree.get(), "work", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  if (upper.get() < 0 || work.get() < 0)
    return internal_error("cannot open " + disk + "/upper and /work: " + strerror(errno));
  // As the range's root: the overlay writes its upper layer with the creds
  // of whoever made it, and host root has no id in the range.
  auto st = as_range_root(ids, [&]() -> status {
    auto made = make_overlay(lowers, upper.get(), work.get());
    if (!made)
      return made.error();
    detached = fd_closer{*made};
    return success();
  });
  if (!st || launch_.made())
    return st;
  // No launch namespace (it could not be made): on the host's path then.
  if (auto moved = attach_mount(detached.get(), rootfs(id), "overlay"); !moved)
    return moved;
  detached = fd_closer{};
  return success();
}

void container_runtime::unmount_root(const std::string& id) {
  auto dir = sandbox_dir(id);
  unmount(rootfs(id));
  std::error_code ec;
  for (auto& entry : fs::directory_iterator(dir + "/lower", ec))
    unmount(entry.path());
  unmount(dir + "/disk-mapped");
  for (auto& entry : fs::directory_iterator(dir + "/volumes", ec))
    unmount(entry.path());
}

status container_runtime::pause(const std::string& id) {
  // The freezer directly where there is one: what crun would do, less a
  // process. The pause answers once nothing of the sandbox runs.
  if (!gvisor_ && has_freezer(id))
    return freeze(id, std::chrono::seconds(10));
  auto out = run_command(runtime_cmd({"pause", id}));
  if (!out)
    return out.error();
  if (out->exit_code != 0)
    return internal_error("pause failed: " + out->output);
  return success();
}

status container_runtime::resume(const std::string& id) {
  if (!gvisor_ && has_freezer(id))
    return thaw(id);
  auto out = run_command(runtime_cmd({"resume", id}));
  if (!out)
    return out.error();
  if (out->exit_code != 0)
    return internal_error("resume failed: " + out->output);
  return success();
}

// A sandbox with network.rules trusts the egress proxy's CA (added to its
// trust store once; the others' roots are left as the template made them).
status container_runtime::trust_egress_ca(const std::string& root, const network_policy& policy) {
  auto& egress = net_.config().egress;
  if (policy.rules.empty() || !egress)
    return success();
  return trust_in_rootfs(root, egress->ca_pem());
}

status container_runtime::update_network(const std::string& id,
                                         const network_policy& policy) {
  if (!is_valid_sandbox_id(id))
    return internal_error("invalid sandbox id " + id);
  if (auto st = net_.update(id, policy); !st)
    return st;
  auto ids = ids_.of(id);
  if (!ids)
    return ids.error();
  auto root = running_root(id);
  if (!root)
    return root.error();
  return as_range_root(*ids, [&]() -> status {
    auto path = "/proc/self/fd/" + std::to_string(root->get());
    if (auto st = net_.write_resolv_conf(path, policy); !st)
      return st;
    return trust_egress_ca(path, policy);
  });
}

result<std::string> container_runtime::state(const std::string& id) {
  if (!is_valid_sandbox_id(id))
    return internal_error("invalid sandbox id " + id);
  // What `crun state` would say, read where crun reads it, without starting
  // crun for each sandbox (a restart asks for every one of them).
  if (!gvisor_) {
    std::error_code ec;
    if (!fs::is_directory(state_root_ + "/" + id, ec))
      return not_found("no container " + id);
    if (!is_sandbox_process(recorded_init_pid(sandbox_dir(id)), id))
      return std::string{"stopped"};
    return std::string{has_freezer(id) && is_frozen(id) ? "paused" : "running"};
  }
  auto out = run_command(runtime_cmd({"state", id}));
  if (!out)
    return out.error();
  if (out->exit_code != 0)
    return not_found("no container " + id);
  try {
    auto j = json::parse(out->output);
    return j.at("status").get<std::string>();
  } catch (const std::exception& e) {
    return internal_error("unreadable runtime state: " + out->output);
  }
}

void container_runtime::remove_roots_dir() {
  ::rmdir(roots_dir_.c_str()); // fails, as it should, while a sandbox has a root there
}

result<std::vector<std::string>> container_runtime::list() {
  std::vector<std::string> ids;
  std::error_code ec;
  // The runtime keeps one directory per container in its state root.
  for (auto& entry : fs::directory_iterator(state_root_, ec))
    if (entry.is_directory() && is_valid_sandbox_id(entry.path().filename()))
      ids.push_back(entry.path().filename());
  if (ec)
    return internal_error("cannot list " + state_root_ + ": " + ec.message());
  // Sandbox directories whose container never started are ours to clean too.
  for (auto& entry : fs::directory_iterator(data_dir_ + "/sandboxes", ec)) {
    auto name = entry.path().filename().string();
    if (is_valid_sandbox_id(name)
        && std::find(ids.begin(), ids.end(), name) == ids.end())
      ids.push_back(name);
  }
  return ids;
}

result<container_sample> container_runtime::sample(const std::string& id,
                                                   int cpu_count,
                                                   int memory_mb,
                                                   int disk_size_mb) {
  container_sample s;
  s.timestamp_ms = now_ms();
  s.cpu_count = cpu_count;
  auto cg = [&](const std::string& ctrl, const std::string& file) {
    return "/sys/fs/cgroup/" + ctrl + "/sandboxd/" + id + "/" + file;
  };
  auto usage_str = read_file(cg("cpuacct", "cpuacct.usage"));
  if (usage_str.empty())
    return not_found("no cgroup for sandbox " + id);
  int64_t usage_ns = std::stoll(usage_str);
  {
    std::lock_guard<std::mutex> guard{cpu_mtx_};
    auto& last = last_cpu_[id];
    if (last.first > 0 && s.timestamp_ms > last.first) {
      double wall_ns = (s.timestamp_ms - last.first) * 1e6;
      s.cpu_used_pct = 100.0 * (usage_ns - last.second) / (wall_ns * cpu_count);
    }
    last = {s.timestamp_ms, usage_ns};
  }
  auto mem_usage = read_file(cg("memory", "memory.usage_in_bytes"));
  int64_t cache = 0;
  std::istringstream stat{read_file(cg("memory", "memory.stat"))};
  std::string key;
  int64_t value;
  while (stat >> key >> value)
    if (key == "total_cache")
      cache = value;
  s.mem_cache = cache;
  s.mem_used = (mem_usage.empty() ? 0 : std::stoll(mem_usage)) - cache;
  if (s.mem_used < 0)
    s.mem_used = 0;
  s.mem_total = static_cast<int64_t>(memory_mb) * 1024 * 1024;
  // The sandbox's own filesystem's counters: no walk of what it built.
  auto disk = disks_.usage(sandbox_dir(id));
  s.disk_used = disk ? disk->used_bytes : 0;
  s.disk_total = static_cast<int64_t>(disk_size_mb) * 1024 * 1024;
  return s;
}

status container_runtime::copy_layer(const std::string& id, const std::string& dest) {
  std::error_code ec;
  if (fs::exists(dest, ec))
    return conflict("snapshot layer " + dest + " exists already");
  fs::create_directories(fs::path{dest}.parent_path(), ec);
  auto tmp = dest + ".copying";
  fs::remove_all(tmp, ec);
  // cp -a keeps owners, modes, xattrs (overlay's opaque markers) and the
  // whiteout device nodes that record deletions; reflinks where possible.
  auto r = run_command({"cp", "-a", "--reflink=auto",
                        sandbox_disks::mount_point(sandbox_dir(id)) + "/upper", tmp},
                       std::chrono::minutes(10));
  if (!r || r->exit_code != 0) {
    fs::remove_all(tmp, ec);
    return internal_error("cannot copy the sandbox's files: "
                          + (r ? r->output : r.error().message));
  }
  fs::rename(tmp, dest, ec);
  if (ec)
    return internal_error("cannot move the snapshot layer into place: " + ec.message());
  return success();
}

} // namespace sandboxd
