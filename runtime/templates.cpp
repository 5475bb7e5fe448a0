#include "runtime/templates.hpp"

#include "core/code_template.hpp"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/crypto.hpp"
#include "runtime/command.hpp"
#include "runtime/mount_point.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace sandboxd {

namespace {

// Run inside the new root by mmdebstrap: the sandbox user and its workspace.
// Part of the spec hash, so changing it rebuilds every template.
const char* setup_recipe
  = "chroot \"$1\" useradd --create-home --uid 1000 --shell /bin/bash user"
    " && mkdir -p \"$1/workspace\" && chown 1000:1000 \"$1/workspace\""
    " && rm -f \"$1/etc/hostname\"";

// dpkg options for every template (they stay in the image, so packages a
// sandbox installs later are slim too): no manuals, documentation (except
// the copyright files) or translations; no fsync per file while building
// (a build that dies is thrown away). Part of the spec hash.
const std::vector<std::string> dpkg_options = {
  "path-exclude=/usr/share/man/*",    "path-exclude=/usr/share/doc/*",
  "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/info/*",
  "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
  "force-unsafe-io",
};

// Where run steps find the build's CA bundle, removed before the image is done.
const char* build_tmp = "/tmp/sandboxd-build";

// What a completed build leaves beside its rootfs; is_built looks for it.
const char* marker_file = "template.json";

// Variables that carry how the host reaches the network, handed to run steps
// unchanged when the builder has them.
const std::vector<std::string> network_variables = {
  "http_proxy",       "https_proxy",       "no_proxy",           "HTTP_PROXY",
  "HTTPS_PROXY",      "NO_PROXY",          "npm_config_proxy",   "npm_config_https_proxy",
  "npm_config_noproxy", "npm_config_strict_ssl",
};


// Length-prefixed, so no item can fake a boundary (run steps hold newlines).
void canon_add(std::string& canon, const std::string& item) {
  canon += std::to_string(item.size()) + ":" + item + "\n";
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64 || !(std::islower(static_cast<unsigned char>(s[0]))
                                      || std::isdigit(static_cast<unsigned char>(s[0]))))
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c))
           || std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Debian package names (optionally with :arch or =version), nothing that
// could end the --include list or reach the shell.
bool valid_package(const std::string& s) {
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s[0])))
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c))
           || std::isdigit(static_cast<unsigned char>(c))
           || std::string{"+-.:=~"}.find(c) != std::string::npos;
  });
}

std::vector<std::string> string_list(const nlohmann::json& t, const char* key,
                                     const std::string& where) {
  std::vector<std::string> out;
  if (!t.contains(key))
    return out;
  auto& v = t.at(key);
  if (!v.is_array())
    throw std::runtime_error(where + ": " + key + " must be a list of strings");
  for (auto& x : v) {
    if (!x.is_string() || x.get<std::string>().empty())
      throw std::runtime_error(where + ": " + key + " must be a list of non-empty strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

int bounded_int(const nlohmann::json& t, const char* key, int fallback, int lo, int hi,
                const std::string& where) {
  if (!t.contains(key))
    return fallback;
  auto& v = t.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    throw std::runtime_error(where + ": " + key + " must be an integer from "
                             + std::to_string(lo) + " to " + std::to_string(hi));
  return v.get<int>();
}

// Runs argv with stdout and stderr going line by line to `progress`; the
// exit status as waitpid reports it, or -1 when it could not start. The
// child gets SIGTERM when the calling thread ends (sandboxd exits mid-build):
// mmdebstrap then unmounts what it mounted and stops.
int run_streaming(const std::vector<std::string>& argv,
                  const std::function<void(const std::string&)>& progress) {
  auto exe = find_program(argv[0]);
  if (exe.empty()) {
    progress("cannot run " + argv[0] + ": not found on PATH");
    return -1;
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return -1;
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  auto parent = ::getpid();
  struct rlimit files {};
  int max_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                 ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20))
                 : 1 << 16;
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent)
      ::_exit(127);
    int null = ::open("/dev/null", O_RDONLY);
    if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(fds[1], 1) < 0 || ::dup2(fds[1], 2) < 0)
      ::_exit(127);
    // Nothing else of the server's (its listening sockets, the store's
    // files) reaches the build, which may outlive the server for a moment.
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
      for (int fd = 3; fd < max_fd; ++fd)
        ::close(fd);
    ::execve(exe.c_str(), args.data(), environ);
    ::_exit(127);
  }
  int err = errno;
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    progress("cannot run " + argv[0] + ": " + std::strerror(err));
    return -1;
  }
  FILE* in = ::fdopen(fds[0], "r");
  char line[4096];
  while (in && std::fgets(line, sizeof line, in)) {
    std::string s{line};
    if (!s.empty() && s.back() == '\n')
      s.pop_back();
    progress(s);
  }
  if (in)
    std::fclose(in);
  else
    ::close(fds[0]);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

std::string describe_exit(int st) {
  if (st < 0)
    return "could not start";
  if (WIFEXITED(st))
    return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return "signal " + std::to_string(WTERMSIG(st));
  return "status " + std::to_string(st);
}

// An exclusive flock held for the lifetime of the object.
class file_lock {
public:
  explicit file_lock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  }
  ~file_lock() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;
  bool try_lock() { return fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0; }
  bool lock() {
    while (fd_ >= 0 && ::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR)
        return false;
    return fd_ >= 0;
  }

private:
  int fd_ = -1;
};

// Failures of remove_one_fs's walk (nftw's callback takes no context).
thread_local int removal_failures = 0;

int remove_entry(const char* path, const struct stat*, int type, struct FTW*) {
  int rc = type == FTW_DP ? ::rmdir(path) : ::unlink(path);
  if (rc != 0 && errno != ENOENT)
    ++removal_failures;
  return 0;
}

// Removes `dir` without ever leaving its filesystem: whatever is mounted
// inside (even a mount that appeared after the caller looked) is neither
// entered nor removed, so the directory holding it stays and the removal
// reports an error instead of emptying the host's /dev or /proc.
void remove_one_fs(const std::string& dir, std::error_code& ec) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    return;
  removal_failures = 0;
  ::nftw(dir.c_str(), remove_entry, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (removal_failures > 0 || ::lstat(dir.c_str(), &st) == 0)
    ec = std::make_error_code(std::errc::device_or_resource_busy);
}

// Whether a process names `dir` on its command line: mmdebstrap (and its
// forks) building into it.
bool being_built(const std::string& dir) {
  std::error_code ec;
  for (auto& e : fs::directory_iterator("/proc", ec)) {
    auto pid = e.path().filename().string();
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      continue;
    std::ifstream in{e.path() / "cmdline"};
    std::string cmdline{std::istreambuf_iterator<char>{in}, {}};
    if (cmdline.find(dir + "/") != std::string::npos || cmdline.find(dir + std::string(1, '\0')) != std::string::npos)
      return true;
  }
  return false;
}

// Waits (at most `wait`) until no process builds into `dir`, telling
// `progress` once; false when one still does.
bool wait_until_unused(const std::string& dir, std::chrono::seconds wait,
                       const std::function<void(const std::string&)>& progress) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  bool told = false;
  while (being_built(dir)) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    if (!told)
      progress("waiting for an earlier build into " + dir + " to stop");
    told = true;
    ::usleep(200 * 1000);
  }
  return true;
}

// Removes a directory a build left, after unmounting whatever an interrupted
// mmdebstrap left mounted inside it (/proc, /sys, device nodes), so removal
// never walks into a mount.
void remove_build_dir(const std::string& dir, std::error_code& ec) {
  for (auto& m : mount_points_under(dir))
    ::umount2(m.c_str(), MNT_DETACH);
  remove_one_fs(dir, ec);
}

} // namespace

build_network build_network::from_environment() {
  build_network net;
  auto env = [](const char* k) -> std::string {
    const char* v = std::getenv(k);
    return v ? v : "";
  };
  for (auto k : {"npm_config_registry", "NPM_CONFIG_REGISTRY"})
    if (!env(k).empty()) {
      net.npm_registry = env(k);
      break;
    }
  for (auto& k : network_variables)
    if (!env(k.c_str()).empty())
      net.settings[k] = env(k.c_str());
  for (auto k : {"npm_config_cafile", "NPM_CONFIG_CAFILE", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"}) {
    std::error_code ec;
    if (!env(k).empty() && fs::is_regular_file(env(k), ec)) {
      net.ca_file = env(k);
      break;
    }
  }
  return net;
}

result<template_catalog> template_catalog::load(const std::string& spec_file,
                                                const std::string& cache_dir) {
  std::ifstream in{spec_file};
  if (!in)
    return internal_error("cannot read template catalogue " + spec_file);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    return internal_error("template catalogue " + spec_file + ": " + e.what());
  }
  template_catalog cat;
  cat.cache_dir_ = cache_dir;
  static const std::set<std::string> known_keys = {
    "name", "description", "aliases", "extends", "packages",
    "run",  "env",         "cpu_count", "memory_mb", "start_cmd", "ready_port"};
  try {
    if (!doc.is_object() || !doc.contains("templates") || !doc["templates"].is_array())
      throw std::runtime_error("needs a \"templates\" list");
    cat.suite_ = doc.value("suite", "bookworm");
    cat.mirror_ = doc.value("mirror", "http://deb.debian.org/debian");
    std::set<std::string> taken; // names and aliases
    for (auto& t : doc["templates"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
        throw std::runtime_error("every template needs a \"name\"");
      template_spec s;
      s.name = t["name"].get<std::string>();
      auto where = "template " + s.name;
      if (!valid_name(s.name))
        throw std::runtime_error(where + ": names are lower case letters, digits, _ and -");
      for (auto& [k, v] : t.items())
        if (!known_keys.count(k))
          throw std::runtime_error(where + ": unknown key \"" + k + "\"");
      s.description = t.value("description", "");
      s.aliases = string_list(t, "aliases", where);
      std::vector<std::string> names{s.name};
      names.insert(names.end(), s.aliases.begin(), s.aliases.end());
      for (auto& n : names) {
        if (!valid_name(n))
          throw std::runtime_error(where + ": alias \"" + n
                                   + "\" is not lower case letters, digits, _ and -");
        if (!taken.insert(n).second)
          throw std::runtime_error(where + ": the name \"" + n + "\" is already taken");
      }
      int cpu = 2, mem = 512;
      if (t.contains("extends")) {
        if (!t["extends"].is_string())
          throw std::runtime_error(where + ": extends must be a template name");
        auto parent = cat.find(t["extends"].get<std::string>());
        if (!parent)
          return internal_error("template " + s.name + " extends unknown "
                                + t["extends"].get<std::string>());
        s.extends = parent->name;
        s.packages = parent->packages;
        s.run = parent->run;
        s.env = parent->env;
        s.start_cmd = parent->start_cmd;
        s.ready_port = parent->ready_port;
        cpu = parent->cpu_count;
        mem = parent->memory_mb;
      }
      for (auto& p : string_list(t, "packages", where)) {
        if (!valid_package(p))
          throw std::runtime_error(where + ": \"" + p + "\" is not a Debian package name");
        s.packages.push_back(p);
      }
      for (auto& r : string_list(t, "run", where))
        s.run.push_back(r);
      if (t.contains("env")) {
        if (!t["env"].is_object())
          throw std::runtime_error(where + ": env must be an object of strings");
        for (auto& [k, v] : t["env"].items()) {
          if (!v.is_string())
            throw std::runtime_error(where + ": env " + k + " must be a string");
          s.env[k] = v.get<std::string>();
        }
      }
      if (t.contains("start_cmd")) {
        if (!t["start_cmd"].is_string())
          throw std::runtime_error(where + ": start_cmd must be a string");
        s.start_cmd = t["start_cmd"].get<std::string>();
        s.ready_port = 0; // the parent's server is not this one
      }
      s.ready_port = bounded_int(t, "ready_port", s.ready_port, 0, 65535, where);
      if (s.ready_port != 0 && s.start_cmd.empty())
        throw std::runtime_error(where + ": ready_port needs a start_cmd");
      s.cpu_count = bounded_int(t, "cpu_count", cpu, 1, 256, where);
      s.memory_mb = bounded_int(t, "memory_mb", mem, 64, 1 << 20, where);
      std::sort(s.packages.begin(), s.packages.end());
      s.packages.erase(std::unique(s.packages.begin(), s.packages.end()), s.packages.end());
      if (s.packages.empty())
        throw std::runtime_error(where + ": no packages");
      s.hash = cat.hash_of(s.packages, s.run);
      cat.specs_.push_back(std::move(s));
    }
  } catch (const std::exception& e) {
    return internal_error("template catalogue " + spec_file + ": " + e.what());
  }
  return cat;
}

result<template_spec> template_catalog::find(const std::string& name) const {
  for (auto& s : specs_)
    if (s.name == name)
      return s;
  for (auto& s : specs_)
    if (std::find(s.aliases.begin(), s.aliases.end(), name) != s.aliases.end())
      return s;
  return bad_request("unknown template: " + name);
}

std::vector<template_spec> template_catalog::all() const {
  return specs_;
}

// What the root filesystem is made of; resources and env are applied when a
// sandbox starts, so they are not in it.
std::string template_catalog::hash_of(const std::vector<std::string>& packages,
                                      const std::vector<std::string>& run) const {
  std::string canon;
  canon_add(canon, suite_);
  canon_add(canon, mirror_);
  canon_add(canon, "minbase");
  canon_add(canon, setup_recipe);
  for (auto& o : dpkg_options)
    canon_add(canon, "dpkg:" + o);
  for (auto& p : packages)
    canon_add(canon, "package:" + p);
  for (auto& r : run)
    canon_add(canon, "run:" + r);
  return sha256_hex(canon).substr(0, 16);
}

std::string template_catalog::dir_of(const template_spec& spec) const {
  auto& base = spec.user && !user_dir_.empty() ? user_dir_ : cache_dir_;
  return base + "/" + spec.name + "-" + spec.hash;
}

void template_catalog::set_user_dir(const std::string& dir) {
  user_dir_ = dir;
}

result<template_build> template_catalog::recipe(const template_request& req) const {
  for (auto& s : specs_)
    if (s.name == req.name
        || std::find(s.aliases.begin(), s.aliases.end(), req.name) != s.aliases.end())
      return conflict("the name " + req.name + " is taken by the catalogue template " + s.name);
  auto parent = find(req.extends);
  if (!parent) {
    std::string known;
    for (auto& s : specs_)
      known += (known.empty() ? "" : ", ") + s.name;
    return bad_request("extends: unknown template " + req.extends
                       + " (the catalogue's templates: " + known + ")");
  }
  template_build b;
  b.parent = parent->name;
  b.packages = parent->packages;
  b.packages.insert(b.packages.end(), req.packages.begin(), req.packages.end());
  std::sort(b.packages.begin(), b.packages.end());
  b.packages.erase(std::unique(b.packages.begin(), b.packages.end()), b.packages.end());
  b.run = parent->run;
  b.env = parent->env;
  for (auto& [k, v] : req.env)
    b.env[k] = v;
  // No start command of its own: the parent's runs (the code interpreter's
  // server in a template extending code_interpreter).
  b.start_cmd = req.start_cmd.empty() ? parent->start_cmd : req.start_cmd;
  b.ready_port = req.start_cmd.empty() ? parent->ready_port : 0;
  b.cpu_count = req.cpu_count.value_or(parent->cpu_count);
  b.memory_mb = req.memory_mb.value_or(parent->memory_mb);
  b.hash = hash_of(b.packages, b.run);
  return b;
}

template_spec template_catalog::user_spec(const user_template& t, const template_build& b) {
  template_spec s;
  s.name = t.id;
  s.description = "template " + t.name + " of its org, build " + b.id;
  s.aliases = {t.name};
  s.extends = b.parent;
  s.packages = b.packages;
  s.run = b.run;
  s.env = b.env;
  s.cpu_count = b.cpu_count;
  s.memory_mb = b.memory_mb;
  s.hash = b.hash;
  s.user = true;
  s.start_cmd = b.start_cmd;
  s.ready_port = b.ready_port;
  s.layers_snapshot = b.snapshot_id;
  s.default_user = b.default_user;
  s.default_workdir = b.default_workdir;
  return s;
}

int64_t template_catalog::built_at_ms(const template_spec& spec) const {
  if (!is_built(spec))
    return 0;
  struct stat st {};
  if (::stat((dir_of(spec) + "/" + marker_file).c_str(), &st) != 0)
    return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

status template_catalog::discard_partial(const template_spec& spec,
                                         std::chrono::seconds wait) const {
  auto dir = dir_of(spec) + ".building";
  if (!wait_until_unused(dir, wait, [](const std::string&) {}))
    return conflict("a process still builds into " + dir);
  std::error_code ec;
  remove_build_dir(dir, ec);
  if (ec)
    return internal_error("cannot remove " + dir + ": " + ec.message());
  return success();
}

status template_catalog::remove_user_template(const std::string& template_id) const {
  // Only ever names made by user_spec: "<20 of [a-z0-9]>-<hash>[.building]".
  if (template_id.size() != 20
      || !std::all_of(template_id.begin(), template_id.end(), [](char c) {
           return std::islower(static_cast<unsigned char>(c))
                  || std::isdigit(static_cast<unsigned char>(c));
         }))
    return bad_request("not a template id: " + template_id);
  auto base = user_dir_.empty() ? cache_dir_ : user_dir_;
  std::error_code ec;
  std::vector<std::string> doomed;
  for (auto& e : fs::directory_iterator(base, ec))
    if (e.path().filename().string().rfind(template_id + "-", 0) == 0)
      doomed.push_back(e.path().string());
  for (auto& d : doomed) {
    std::error_code rc;
    remove_build_dir(d, rc);
    if (rc)
      return internal_error("cannot remove " + d + ": " + rc.message());
  }
  return success();
}

std::string template_catalog::rootfs(const template_spec& spec) const {
  return dir_of(spec) + "/rootfs";
}

bool template_catalog::is_built(const template_spec& spec) const {
  std::error_code ec;
  return fs::is_regular_file(dir_of(spec) + "/" + marker_file, ec)
         && fs::is_directory(rootfs(spec), ec);
}

std::vector<std::string> template_catalog::build_command(const template_spec& spec,
                                                         const std::string& target,
                                                         const build_network& net) const {
  std::string include;
  for (auto& p : spec.packages)
    include += (include.empty() ? "" : ",") + p;
  std::vector<std::string> argv{"mmdebstrap", "--variant=minbase", "--include=" + include};
  for (auto& o : dpkg_options)
    argv.push_back("--dpkgopt=" + o);
  argv.push_back("--aptopt=Acquire::Retries \"3\"");
  // The .debs of every build stay in <cache>/apt-archives for the next one
  // (apt checks each against the index before using it).
  auto archives = cache_dir_ + "/apt-archives";
  if (archives.find_first_of(" \t\n'\"") == std::string::npos) {
    argv.push_back("--skip=essential/unlink");
    argv.push_back("--setup-hook=mkdir -p \"$1/var/cache/apt/archives\"");
    argv.push_back("--setup-hook=sync-in " + archives + "/ /var/cache/apt/archives/");
    argv.push_back("--customize-hook=sync-out /var/cache/apt/archives/ " + archives + "/");
  }
  argv.push_back(std::string{"--customize-hook="} + setup_recipe);
  if (!spec.run.empty()) {
    // Run steps see a fixed environment, plus how to reach the registries.
    std::string env = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                      " HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive"
                      " npm_config_update_notifier=false npm_config_fund=false"
                      " npm_config_audit=false";
    env += " " + shell_quote("npm_config_registry=" + net.npm_registry);
    for (auto& [k, v] : net.settings)
      env += " " + shell_quote(k + "=" + v);
    std::string prepare = std::string{"mkdir -p \"$1"} + build_tmp + "\"";
    if (!net.ca_file.empty()) {
      auto ca = std::string{build_tmp} + "/ca.crt";
      prepare += " && cp " + shell_quote(net.ca_file) + " \"$1" + ca + "\"";
      env += " npm_config_cafile=" + ca + " NODE_EXTRA_CA_CERTS=" + ca + " SSL_CERT_FILE=" + ca;
    }
    argv.push_back("--customize-hook=" + prepare);
    for (auto& step : spec.run)
      argv.push_back("--customize-hook=chroot \"$1\" /usr/bin/env -i " + env
                     + " /bin/sh -ec " + shell_quote(step));
    argv.push_back(std::string{"--customize-hook=rm -rf \"$1"} + build_tmp
                   + "\" \"$1/root/.npm\" \"$1/root/.cache\"");
  }
  argv.push_back(suite_);
  argv.push_back(target);
  argv.push_back(mirror_);
  return argv;
}

status template_catalog::build(
  const template_spec& spec,
  const std::function<void(const std::string&)>& progress) const {
  if (is_built(spec)) {
    progress("template " + spec.name + " is cached at " + rootfs(spec));
    return success();
  }
  std::error_code ec;
  fs::create_directories(cache_dir_ + "/apt-archives", ec);
  if (ec)
    return internal_error("cannot create " + cache_dir_ + ": " + ec.message());
  file_lock lock{cache_dir_ + "/.build.lock"};
  if (!lock.try_lock()) {
    progress("waiting for another template build to finish");
    if (!lock.lock())
      return internal_error("cannot lock " + cache_dir_ + "/.build.lock");
  }
  if (is_built(spec)) {
    progress("template " + spec.name + " is cached at " + rootfs(spec));
    return success();
  }
  auto started = std::chrono::steady_clock::now();
  auto final_dir = dir_of(spec);
  auto tmp_dir = final_dir + ".building";
  // A server that died mid-build leaves its mmdebstrap finishing a step.
  if (!wait_until_unused(tmp_dir, std::chrono::seconds(600), progress))
    return internal_error("an earlier build into " + tmp_dir + " does not stop");
  remove_build_dir(tmp_dir, ec);
  if (ec)
    return internal_error("cannot remove what an earlier build left in " + tmp_dir + ": "
                          + ec.message());
  fs::create_directories(tmp_dir, ec);
  if (ec)
    return internal_error("cannot create " + tmp_dir + ": " + ec.message());
  auto fail = [&](const std::string& why) -> status {
    remove_build_dir(tmp_dir, ec);
    return internal_error(why);
  };
  // A template with the same spec under another name: hard links to it.
  const template_spec* twin = nullptr;
  for (auto& s : specs_)
    if (s.hash == spec.hash && s.name != spec.name && is_built(s))
      twin = &s;
  bool linked = false;
  if (twin) {
    progress("template " + spec.name + " has the spec of " + twin->name
             + ": linking its files");
    int st = run_streaming({"cp", "-a", "-l", rootfs(*twin), tmp_dir + "/rootfs"}, progress);
    linked = st == 0;
    if (!linked) {
      // E.g. another filesystem: build it instead.
      progress("cannot link template " + twin->name + " (" + describe_exit(st)
               + "): building instead");
      remove_build_dir(tmp_dir, ec);
      fs::create_directories(tmp_dir, ec);
      if (ec)
        return internal_error("cannot create " + tmp_dir + ": " + ec.message());
    }
  }
  if (!linked) {
    auto net = build_network::from_environment();
    progress("building template " + spec.name + " (" + std::to_string(spec.packages.size())
             + " packages, " + std::to_string(spec.run.size()) + " run steps, npm registry "
             + net.npm_registry + ")");
    int st = run_streaming(build_command(spec, tmp_dir + "/rootfs", net), progress);
    if (st != 0 || !fs::exists(tmp_dir + "/rootfs/etc/os-release"))
      return fail("mmdebstrap failed for template " + spec.name + " ("
                  + describe_exit(st) + ")");
  }
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::steady_clock::now() - started)
                   .count();
  nlohmann::json marker = {{"name", spec.name},     {"hash", spec.hash},
                           {"packages", spec.packages}, {"run", spec.run},
                           {"build_seconds", seconds}};
  {
    std::ofstream out{tmp_dir + "/" + marker_file};
    out << marker.dump(2) << "\n";
    if (!out)
      return fail("cannot write " + tmp_dir + "/" + marker_file);
  }
  // On disk before it is named as built.
  if (int fd = ::open(tmp_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    ::syncfs(fd);
    ::close(fd);
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp_dir, final_dir, ec);
  if (ec)
    return fail("cannot move template into place: " + ec.message());
  progress("template " + spec.name + " built at " + rootfs(spec) + " in "
           + std::to_string(seconds) + " s");
  return success();
}

} // namespace sandboxd
