#include "runtime/agent/process_table.hpp"
#include "runtime/agent/secrets.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/agent/request.hpp"
#include "runtime/agent_protocol.hpp"
#include "runtime/base64.hpp"

namespace sandboxd::agent {
namespace {

constexpr size_t kBacklogLimit = 1u << 20;          // raw bytes kept while detached
constexpr size_t kSubscriberLimit = 8u << 20;       // encoded bytes queued per client
constexpr auto kStuckClientGrace = std::chrono::seconds(30);
constexpr auto kBackpressurePoll = std::chrono::milliseconds(20);
constexpr auto kDrainIdleAfterExit = std::chrono::milliseconds(200);
constexpr auto kDrainMaxAfterExit = std::chrono::seconds(2);
constexpr auto kInputWriteTimeout = std::chrono::seconds(30);

frame_ptr encode(const json& j) { return std::make_shared<const std::string>(encode_frame(j)); }

const char* go_signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "hangup";
    case SIGINT: return "interrupt";
    case SIGQUIT: return "quit";
    case SIGILL: return "illegal instruction";
    case SIGTRAP: return "trace/breakpoint trap";
    case SIGABRT: return "aborted";
    case SIGBUS: return "bus error";
    case SIGFPE: return "floating point exception";
    case SIGKILL: return "killed";
    case SIGUSR1: return "user defined signal 1";
    case SIGSEGV: return "segmentation fault";
    case SIGUSR2: return "user defined signal 2";
    case SIGPIPE: return "broken pipe";
    case SIGALRM: return "alarm clock";
    case SIGTERM: return "terminated";
    case SIGSTKFLT: return "stack fault";
    case SIGCHLD: return "child exited";
    case SIGCONT: return "continued";
    case SIGSTOP: return "stopped (signal)";
    case SIGTSTP: return "stopped";
    case SIGTTIN: return "stopped (tty input)";
    case SIGTTOU: return "stopped (tty output)";
    case SIGURG: return "urgent I/O condition";
    case SIGXCPU: return "CPU time limit exceeded";
    case SIGXFSZ: return "file size limit exceeded";
    case SIGVTALRM: return "virtual timer expired";
    case SIGPROF: return "profiling timer expired";
    case SIGWINCH: return "window changed";
    case SIGIO: return "I/O possible";
    case SIGPWR: return "power failure";
    case SIGSYS: return "bad system call";
    default: return nullptr;
  }
}

}  // namespace

std::string wait_status_string(int st) {
  if (WIFEXITED(st)) return "exit status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    const char* name = go_signal_name(sig);
    std::string s = "signal: " + (name ? std::string(name) : "signal " + std::to_string(sig));
    if (WCOREDUMP(st)) s += " (core dumped)";
    return s;
  }
  return "unknown status " + std::to_string(st);
}

// ---- subscriber ----

subscriber::subscriber() { wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
subscriber::~subscriber() {
  if (wake_fd >= 0) ::close(wake_fd);
}
void subscriber::wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(wake_fd, &one, sizeof(one));
}
void subscriber::clear_wake() {
  uint64_t v;
  [[maybe_unused]] ssize_t r = ::read(wake_fd, &v, sizeof(v));
}

// ---- process ----

process::process(const spawn_options& o)
    : tag_(o.tag), cmd_(o.cmd), cwd_(o.cwd), args_(o.args), env_(o.request_env), pty_(o.pty),
      timeout_ms_(o.timeout_ms) {}

process::~process() {
  for (int fd : {out_fd_, err_fd_, exit_fd_, in_fd_})
    if (fd >= 0) ::close(fd);
}

json process::describe() const {
  return json{{"pid", pid_},
              {"tag", tag_.empty() ? json(nullptr) : json(tag_)},
              {"cmd", cmd_},
              {"args", args_},
              {"env", env_},
              {"cwd", cwd_},
              {"pty", pty_}};
}

std::shared_ptr<subscriber> process::attach() {
  auto sub = std::make_shared<subscriber>();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [frame, raw] : backlog_) {
    sub->queue.push_back(frame);
    sub->queued_bytes += frame->size();
  }
  backlog_.clear();
  backlog_bytes_ = 0;
  if (ended_) {
    sub->queue.push_back(end_frame_);
    sub->got_end = true;
  } else {
    subs_.push_back(sub);
  }
  if (!sub->queue.empty()) sub->wake();
  return sub;
}

void process::detach(const std::shared_ptr<subscriber>& sub, std::deque<frame_ptr> unsent) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(subs_.begin(), subs_.end(), sub);
  if (it == subs_.end()) return;  // already detached (dropped, or the process ended)
  subs_.erase(it);
  if (!subs_.empty() || sub->dropped) return;
  // Nobody else saw these frames: keep them for the next client.
  for (auto& f : sub->queue) unsent.push_back(f);
  sub->queue.clear();
  std::deque<std::pair<frame_ptr, size_t>> restored;
  for (auto& f : unsent) {
    if (f == end_frame_) continue;
    restored.emplace_back(f, f->size() * 3 / 4);
    backlog_bytes_ += f->size() * 3 / 4;
  }
  for (auto& entry : backlog_) restored.push_back(std::move(entry));
  backlog_.swap(restored);
  while (backlog_bytes_ > kBacklogLimit && !backlog_.empty()) {
    backlog_bytes_ -= backlog_.front().second;
    backlog_.pop_front();
  }
}

process::take_state process::take(const std::shared_ptr<subscriber>& sub, std::deque<frame_ptr>& out) {
  std::lock_guard<std::mutex> lock(mu_);
  out.clear();
  out.swap(sub->queue);
  sub->queued_bytes = 0;
  if (sub->dropped) return take_state::dropped;
  return sub->got_end ? take_state::finished : take_state::more;
}

bool process::exited() const {
  std::lock_guard<std::mutex> lock(mu_);
  return exited_;
}

bool process::ended() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ended_;
}

std::optional<std::chrono::steady_clock::time_point> process::ended_at() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ended_) return std::nullopt;
  return ended_at_;
}

void process::publish_locked(const frame_ptr& frame, size_t raw_bytes) {
  if (subs_.empty()) {
    backlog_.emplace_back(frame, raw_bytes);
    backlog_bytes_ += raw_bytes;
    while (backlog_bytes_ > kBacklogLimit && !backlog_.empty()) {
      backlog_bytes_ -= backlog_.front().second;
      backlog_.pop_front();
    }
    return;
  }
  for (auto& sub : subs_) {
    sub->queue.push_back(frame);
    sub->queued_bytes += frame->size();
    sub->wake();
  }
}

bool process::backpressured() {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  bool full = false;
  for (auto it = subs_.begin(); it != subs_.end();) {
    auto& sub = *it;
    if (sub->queued_bytes <= kSubscriberLimit) {
      sub->full_since.reset();
    } else if (!sub->full_since) {
      sub->full_since = now;
    } else if (now - *sub->full_since > kStuckClientGrace) {
      // The client stopped reading: drop it rather than stall the process.
      sub->dropped = true;
      sub->queue.clear();
      sub->queued_bytes = 0;
      sub->wake();
      it = subs_.erase(it);
      continue;
    }
    full = full || sub->queued_bytes > kSubscriberLimit;
    ++it;
  }
  return full;
}

void process::emit(const char* type, const char* data, size_t size) {
  auto clean = redact(std::string(data, size));
  frame_ptr f = encode(json{{"type", type}, {"data", base64::encode(clean)}});
  std::lock_guard<std::mutex> lock(mu_);
  publish_locked(f, clean.size());
}

void process::on_exit(int wait_status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (exited_) return;
  exited_ = true;
  wait_status_ = wait_status;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(exit_fd_, &one, sizeof(one));
}

void process::pump() {
  using steady = std::chrono::steady_clock;
  bool kill_pending = timeout_ms_ > 0;
  steady::time_point kill_at = steady::now() + std::chrono::milliseconds(kill_pending ? timeout_ms_ : 0);
  bool timed_out = false;
  bool exit_known = false;
  steady::time_point exit_seen{}, last_data{};
  std::vector<char> buf(64 * 1024);

  for (;;) {
    bool pipes_open = out_fd_ >= 0 || err_fd_ >= 0;
    if (exit_known && !pipes_open) break;
    bool paused = pipes_open && backpressured();
    if (paused && exit_known) exit_seen = last_data = steady::now();  // still draining, not idle

    pollfd fds[3];
    int* owners[3];
    nfds_t n = 0;
    for (int* fd : {&out_fd_, &err_fd_}) {
      if (*fd >= 0 && !paused) {
        fds[n] = pollfd{*fd, POLLIN, 0};
        owners[n++] = fd;
      }
    }
    if (!exit_known) {
      fds[n] = pollfd{exit_fd_, POLLIN, 0};
      owners[n++] = nullptr;
    }

    int timeout = -1;
    auto now = steady::now();
    if (exit_known) {
      // Pipes are still held open (e.g. by a background grandchild): keep
      // draining briefly, then end anyway.
      auto until = std::min(std::max(last_data, exit_seen) + kDrainIdleAfterExit, exit_seen + kDrainMaxAfterExit);
      if (now >= until) break;
      timeout = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()) + 1;
    } else if (kill_pending) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - now).count();
      timeout = left <= 0 ? 0 : static_cast<int>(left) + 1;
    }

    if (paused) {
      int slice = static_cast<int>(kBackpressurePoll.count());
      timeout = timeout < 0 ? slice : std::min(timeout, slice);
    }
    int r = ::poll(fds, n, timeout);
    if (r < 0 && errno != EINTR) break;
    for (nfds_t i = 0; r > 0 && i < n; ++i) {
      if (!fds[i].revents) continue;
      if (owners[i] == nullptr) {
        uint64_t v;
        [[maybe_unused]] ssize_t rr = ::read(exit_fd_, &v, sizeof(v));
        if (exited()) {
          exit_known = true;
          exit_seen = steady::now();
        }
        continue;
      }
      int& fd = *owners[i];
      ssize_t got = ::read(fd, buf.data(), buf.size());
      if (got > 0) {
        const char* type = pty_ ? "pty" : (owners[i] == &out_fd_ ? "stdout" : "stderr");
        emit(type, buf.data(), static_cast<size_t>(got));
        last_data = steady::now();
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        ::close(fd);  // EOF (or EIO: pty slave closed)
        fd = -1;
      }
    }
    if (kill_pending && !exit_known && steady::now() >= kill_at) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      timed_out = true;
      kill_pending = false;
    }
  }
  for (int* fd : {&out_fd_, &err_fd_}) {
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  }
  finish(timed_out);
}

void process::finish(bool timed_out) {
  {
    std::lock_guard<std::mutex> lock(in_mu_);
    if (in_fd_ >= 0) {
      ::close(in_fd_);
      in_fd_ = -1;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  int st = wait_status_;
  bool exited = WIFEXITED(st);
  int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  json end{{"type", "end"},
           {"exit_code", exited ? WEXITSTATUS(st) : -1},
           {"signal", sig},
           {"exited", exited},
           {"status", wait_status_string(st)},
           {"timed_out", timed_out}};
  end_frame_ = encode(end);
  ended_ = true;
  ended_at_ = std::chrono::steady_clock::now();
  for (auto& sub : subs_) {
    sub->queue.push_back(end_frame_);
    sub->got_end = true;
    sub->wake();
  }
  subs_.clear();
}

void process::write_input(const std::string& bytes) {
  std::lock_guard<std::mutex> lock(in_mu_);
  if (in_fd_ < 0) fail("failed_precondition", "stdin is not open for process " + std::to_string(pid_));
  auto until = std::chrono::steady_clock::now() + kInputWriteTimeout;
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(in_fd_, bytes.data() + done, bytes.size() - done);
    if (w > 0) {
      done += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) fail("failed_precondition", "process is not reading its input");
      pollfd p{in_fd_, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
      continue;
    }
    if (w < 0 && errno == EPIPE) fail("failed_precondition", "process closed its input");
    fail_errno(errno, "write input");
  }
}

void process::close_stdin() {
  std::lock_guard<std::mutex> lock(in_mu_);
  if (in_fd_ < 0) return;
  if (pty_) {
    // A terminal has no half-close: send EOF (^D) like a user would.
    char eot = 0x04;
    [[maybe_unused]] ssize_t w = ::write(in_fd_, &eot, 1);
    return;
  }
  ::close(in_fd_);
  in_fd_ = -1;
}

void process::resize(unsigned short cols, unsigned short rows) {
  if (!pty_) fail("invalid_argument", "process " + std::to_string(pid_) + " has no pty");
  std::lock_guard<std::mutex> lock(in_mu_);
  if (in_fd_ < 0) fail("failed_precondition", "process " + std::to_string(pid_) + " has exited");
  winsize ws{};
  ws.ws_col = cols;
  ws.ws_row = rows;
  if (::ioctl(in_fd_, TIOCSWINSZ, &ws) < 0) fail_errno(errno, "resize");
}

void process::send_signal(int sig) {
  if (ended()) fail("not_found", "process not running: " + std::to_string(pid_));
  if (::kill(-pid_, sig) == 0) return;
  if (::kill(pid_, sig) == 0) return;
  if (errno == ESRCH) fail("not_found", "process not running: " + std::to_string(pid_));
  fail_errno(errno, "kill");
}

}  // namespace sandboxd::agent
