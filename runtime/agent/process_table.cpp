#include "runtime/agent/process_table.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/agent/request.hpp"

extern char** environ;

namespace sandboxd::agent {
namespace {

constexpr auto kKeepEnded = std::chrono::seconds(60);

// Where the child failed; reported through the CLOEXEC error pipe.
enum child_stage : int { stage_exec = 0, stage_chdir, stage_setgroups, stage_setgid, stage_setuid, stage_session };

// Everything the child needs, prepared before the clone so that the child
// only makes raw system calls.
struct child_plan {
  char* const* argv = nullptr;
  char** envp = nullptr;
  // Where execvp would look for the program, in order (the PATH of the
  // process's own environment); with sh_argv for a script without #!.
  char* const* candidates = nullptr;
  char** sh_argv = nullptr; // {"/bin/sh", <candidate>, args..., nullptr}
  const char* cwd = nullptr;
  bool set_ids = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t ngroups = 0;
  bool pty = false;
  int slave = -1, in = -1, out = -1, err = -1;
  int report = -1;
};

[[noreturn]] void child_fail(const child_plan& p, int stage) {
  int msg[2] = {stage, errno};
  [[maybe_unused]] ssize_t w = ::write(p.report, msg, sizeof(msg));
  ::_exit(127);
}

// The child runs in a clone that shares the agent's memory, on a stack of
// its own, while the spawning thread waits (CLONE_VM | CLONE_VFORK, as
// posix_spawn does). A fork copied the agent's page tables and made its pages
// copy-on-write: each later write by one of its threads then cost a fault and
// a TLB shootdown across CPUs, about half of an exec's cost under load. So:
// only raw system calls here. glibc's set*id would signal the agent's
// threads; `environ` and anything allocated are the agent's own.
int run_child(void* arg) {
  const auto& p = *static_cast<const child_plan*>(arg);
  // Dispositions first (inherited blocked), then the mask.
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Anything inherited without CLOEXEC must not reach the new program.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

  if (::setsid() < 0) child_fail(p, stage_session);
  if (p.pty) {
    if (::ioctl(p.slave, TIOCSCTTY, 0) < 0) child_fail(p, stage_session);
    ::dup2(p.slave, 0);
    ::dup2(p.slave, 1);
    ::dup2(p.slave, 2);
  } else {
    ::dup2(p.in, 0);
    ::dup2(p.out, 1);
    ::dup2(p.err, 2);
  }
  if (p.set_ids) {
    if (::syscall(SYS_setgroups, p.ngroups, p.groups) < 0) child_fail(p, stage_setgroups);
    if (::syscall(SYS_setgid, p.gid) < 0) child_fail(p, stage_setgid);
    if (::syscall(SYS_setuid, p.uid) < 0) child_fail(p, stage_setuid);
  }
  if (::chdir(p.cwd) < 0) child_fail(p, stage_chdir);
  // execvp's search: a missing candidate moves on, EACCES is remembered,
  // any other failure ends the search; a file without #! runs under sh.
  bool denied = false;
  for (auto c = p.candidates; *c; ++c) {
    ::execve(*c, p.argv, p.envp);
    if (errno == ENOEXEC) {
      p.sh_argv[1] = *c;
      ::execve(p.sh_argv[0], p.sh_argv, p.envp);
      errno = ENOEXEC;
      break;
    }
    if (errno == EACCES)
      denied = true;
    else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV
             && errno != ETIMEDOUT)
      break;
  }
  if (denied && (errno == ENOENT || errno == ENOTDIR))
    errno = EACCES;
  child_fail(p, stage_exec);
}

// One stack for every child: clones happen under the table lock, and each
// child is done with it (exec'd or exited) before its clone returns.
char* child_stack_top() {
  static char* top = [] {
    constexpr size_t size = 256 * 1024;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<char*>(p) + size;
  }();
  return top;
}

// execvp's candidates for `file` under the PATH of `env` (glibc's default
// when it has none; an empty entry is the working directory).
std::vector<std::string> exec_candidates(const std::string& file,
                                         const std::vector<std::string>& env) {
  if (file.find('/') != std::string::npos)
    return {file};
  std::string path = "/bin:/usr/bin";
  for (auto& e : env)
    if (e.rfind("PATH=", 0) == 0)
      path = e.substr(5);
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    auto end = path.find(':', start);
    auto dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    out.push_back(dir.empty() ? file : dir + "/" + file);
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return out;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

std::string stage_message(int stage, const spawn_options& o) {
  switch (stage) {
    case stage_exec: return "exec " + o.cmd;
    case stage_chdir: return "chdir " + o.cwd;
    case stage_setgroups: return "setgroups";
    case stage_setgid: return "setgid";
    case stage_setuid: return "setuid";
    default: return "start session";
  }
}

}  // namespace

process_table& process_table::instance() {
  static process_table* table = new process_table();  // never destroyed: threads use it until exit
  return *table;
}

std::shared_ptr<process> process_table::spawn(const spawn_options& o, std::shared_ptr<subscriber>* first) {
  auto proc = std::make_shared<process>(o);

  std::vector<std::string> argv_s;
  argv_s.push_back(o.cmd);
  argv_s.insert(argv_s.end(), o.args.begin(), o.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = o.env;
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<gid_t> groups = o.user.groups;
  if (groups.empty()) groups.push_back(o.user.gid);

  int in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1, master = -1, slave = -1;
  int rep[2] = {-1, -1};
  auto cleanup = [&] {
    for (int* fd : {&in_r, &in_w, &out_r, &out_w, &err_r, &err_w, &master, &slave, &rep[0], &rep[1]}) close_fd(*fd);
  };
  auto check = [&](bool ok, const char* what) {
    if (ok) return;
    int e = errno;
    cleanup();
    fail_errno(e, what);
  };

  if (o.pty) {
    winsize ws{};
    ws.ws_col = o.cols;
    ws.ws_row = o.rows;
    check(::openpty(&master, &slave, nullptr, nullptr, &ws) == 0, "openpty");
    ::fcntl(master, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave, F_SETFD, FD_CLOEXEC);
  } else {
    int p[2];
    check(::pipe2(p, O_CLOEXEC) == 0, "pipe");
    out_r = p[0], out_w = p[1];
    check(::pipe2(p, O_CLOEXEC) == 0, "pipe");
    err_r = p[0], err_w = p[1];
    if (o.stdin_pipe) {
      check(::pipe2(p, O_CLOEXEC) == 0, "pipe");
      in_r = p[0], in_w = p[1];
    } else {
      in_r = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      check(in_r >= 0, "open /dev/null");
    }
  }
  check(::pipe2(rep, O_CLOEXEC) == 0, "pipe");
  proc->exit_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  check(proc->exit_fd_ >= 0, "eventfd");

  auto candidates_s = exec_candidates(o.cmd, env_s);
  std::vector<char*> candidates;
  for (auto& c : candidates_s) candidates.push_back(c.data());
  candidates.push_back(nullptr);
  std::string sh = "/bin/sh";
  std::vector<char*> sh_argv{sh.data(), nullptr};
  sh_argv.insert(sh_argv.end(), argv.begin() + 1, argv.end());  // args and the final nullptr

  child_plan plan;
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.candidates = candidates.data();
  plan.sh_argv = sh_argv.data();
  plan.cwd = o.cwd.c_str();
  plan.set_ids = ::geteuid() == 0 || o.user.uid != ::geteuid();
  plan.uid = o.user.uid;
  plan.gid = o.user.gid;
  plan.groups = groups.data();
  plan.ngroups = groups.size();
  plan.pty = o.pty;
  plan.slave = slave;
  plan.in = in_r;
  plan.out = out_w;
  plan.err = err_w;
  plan.report = rep[1];

  pid_t pid;
  {
    // Holding the table lock across fork+insert means the reaper cannot see
    // this pid before it is in the table.
    std::lock_guard<std::mutex> lock(mu_);
    // No signal handler of the agent's may run on the child's stack.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = ::clone(run_child, child_stack_top(), CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
    int clone_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = clone_errno;
    if (pid > 0) {
      proc->pid_ = pid;
      purge_locked();
      procs_[pid] = proc;
    }
  }
  check(pid > 0, "clone");
  {
    std::lock_guard<std::mutex> lock(child_mu_);
    ++forks_;
  }
  child_cv_.notify_all();

  close_fd(slave);
  close_fd(in_r);
  close_fd(out_w);
  close_fd(err_w);
  close_fd(rep[1]);
  int msg[2];
  size_t got = 0;
  while (got < sizeof(msg)) {
    ssize_t n = ::read(rep[0], reinterpret_cast<char*>(msg) + got, sizeof(msg) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close_fd(rep[0]);
  if (got == sizeof(msg)) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = procs_.find(pid);
      if (it != procs_.end() && it->second == proc) procs_.erase(it);
    }
    cleanup();
    errno = msg[1];
    fail_errno(msg[1], stage_message(msg[0], o));
  }

  if (o.pty) {
    set_nonblocking(master);
    proc->out_fd_ = master;
    proc->in_fd_ = ::fcntl(master, F_DUPFD_CLOEXEC, 3);
    master = -1;
  } else {
    proc->out_fd_ = out_r;
    proc->err_fd_ = err_r;
    set_nonblocking(out_r);
    set_nonblocking(err_r);
    out_r = err_r = -1;
    if (in_w >= 0) {
      set_nonblocking(in_w);
      proc->in_fd_ = in_w;
      in_w = -1;
    }
  }
  if (first) *first = proc->attach();
  std::thread([proc] { proc->pump(); }).detach();
  return proc;
}

std::shared_ptr<process> process_table::find_pid(int pid) {
  std::lock_guard<std::mutex> lock(mu_);
  purge_locked();
  auto it = procs_.find(pid);
  return it == procs_.end() ? nullptr : it->second;
}

std::shared_ptr<process> process_table::find_tag(const std::string& tag) {
  std::lock_guard<std::mutex> lock(mu_);
  purge_locked();
  std::shared_ptr<process> best;
  for (auto& [pid, p] : procs_) {
    if (p->tag() != tag) continue;
    if (!best || (best->ended() && !p->ended())) best = p;
  }
  return best;
}

std::vector<std::shared_ptr<process>> process_table::running() {
  std::lock_guard<std::mutex> lock(mu_);
  purge_locked();
  std::vector<std::shared_ptr<process>> out;
  for (auto& [pid, p] : procs_)
    if (!p->exited()) out.push_back(p);
  return out;
}

void process_table::purge_locked() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = procs_.begin(); it != procs_.end();) {
    auto at = it->second->ended_at();
    if (at && now - *at > kKeepEnded) {
      it = procs_.erase(it);
    } else {
      ++it;
    }
  }
}

void process_table::start_reaper() {
  std::thread([this] { reaper_loop(); }).detach();
}

void process_table::reaper_loop() {
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(child_mu_);
      seen = forks_;
    }
    int st = 0;
    pid_t pid = ::waitpid(-1, &st, 0);
    if (pid > 0) {
      std::shared_ptr<process> p;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = procs_.find(pid);
        if (it != procs_.end()) p = it->second;
      }
      if (p) p->on_exit(st);  // otherwise an orphan we just reaped
      continue;
    }
    if (errno == EINTR) continue;
    // ECHILD: no children right now; wait for the next fork, however long
    // (an idle sandbox costs no wakeups). Nothing else can give us a child:
    // an orphan is re-parented to us before its parent is reaped, so while
    // any process lives here waitpid blocks instead.
    std::unique_lock<std::mutex> lock(child_mu_);
    child_cv_.wait(lock, [&] { return forks_ != seen; });
  }
}

void process_table::terminate_all(std::chrono::milliseconds grace) {
  auto procs = running();
  for (auto& p : procs) {
    ::kill(-p->pid(), SIGTERM);
    ::kill(p->pid(), SIGTERM);
  }
  auto until = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < until) {
    bool all = true;
    for (auto& p : procs) all = all && p->exited();
    if (all) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& p : procs) {
    if (!p->exited()) {
      ::kill(-p->pid(), SIGKILL);
      ::kill(p->pid(), SIGKILL);
    }
  }
}

}  // namespace sandboxd::agent
