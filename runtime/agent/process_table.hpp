// Processes spawned by the agent: output fan-out to attached connections,
// a bounded backlog while nobody is attached, and the table that the reaper
// delivers exit statuses to.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/agent/users.hpp"

namespace sandboxd::agent {

using json = nlohmann::json;
using frame_ptr = std::shared_ptr<const std::string>;  // an encoded frame

/// One attached connection's queue of encoded frames. The owning connection
/// thread waits on wake_fd (an eventfd) and drains the queue.
struct subscriber {
  subscriber();
  ~subscriber();
  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;

  void wake();
  void clear_wake();

  int wake_fd = -1;
  // Guarded by the owning process's mutex.
  std::deque<frame_ptr> queue;
  size_t queued_bytes = 0;
  bool dropped = false;  // fell too far behind; the connection is closed
  bool got_end = false;  // the end frame is queued (it is always the last)
  std::optional<std::chrono::steady_clock::time_point> full_since;  // queue over the limit since
};

struct spawn_options {
  std::string cmd;
  std::vector<std::string> args;
  std::map<std::string, std::string> request_env;  // as given by the request
  std::vector<std::string> env;                     // full "K=V" environment
  std::string cwd;
  user_info user;
  int64_t timeout_ms = 0;
  bool stdin_pipe = false;
  bool pty = false;
  unsigned short cols = 80, rows = 24;
  std::string tag;
};

class process {
 public:
  explicit process(const spawn_options& opts);
  ~process();
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  int pid() const { return pid_; }
  const std::string& tag() const { return tag_; }
  bool is_pty() const { return pty_; }
  /// Entry for list_processes.
  json describe() const;

  /// Attaches a new subscriber: it first receives the undelivered backlog
  /// (and the end frame if the process already ended).
  std::shared_ptr<subscriber> attach();
  /// Detaches; `unsent` frames (taken but not delivered) and anything still
  /// queued go back to the backlog if no other client remains attached.
  void detach(const std::shared_ptr<subscriber>& sub, std::deque<frame_ptr> unsent = {});
  enum class take_state { more, finished, dropped };
  /// Moves queued frames out. finished: `out` ends with the end frame;
  /// dropped: the subscriber fell behind and must disconnect.
  take_state take(const std::shared_ptr<subscriber>& sub, std::deque<frame_ptr>& out);

  bool exited() const;  // exit status known
  bool ended() const;   // end frame produced
  std::optional<std::chrono::steady_clock::time_point> ended_at() const;

  // Throw agent_error on failure.
  void write_input(const std::string& bytes);
  void close_stdin();
  void resize(unsigned short cols, unsigned short rows);
  void send_signal(int sig);

  /// Called by the reaper with the waitpid() status.
  void on_exit(int wait_status);

 private:
  friend class process_table;
  void pump();  // runs on its own thread: output, timeout, end frame
  void emit(const char* type, const char* data, size_t size);
  void publish_locked(const frame_ptr& frame, size_t raw_bytes);
  /// True while an attached client's queue is full (the pump then stops
  /// reading output, which back-pressures the process); drops clients that
  /// stay full for too long.
  bool backpressured();
  void finish(bool timed_out);

  int pid_ = 0;
  std::string tag_, cmd_, cwd_;
  std::vector<std::string> args_;
  std::map<std::string, std::string> env_;
  bool pty_ = false;
  int64_t timeout_ms_ = 0;

  int out_fd_ = -1, err_fd_ = -1;  // read ends (pty: out_fd_ is the master)
  int exit_fd_ = -1;               // eventfd written by on_exit
  std::mutex in_mu_;
  int in_fd_ = -1;  // stdin pipe write end, or a dup of the pty master

  mutable std::mutex mu_;
  bool exited_ = false;
  int wait_status_ = 0;
  bool ended_ = false;
  std::chrono::steady_clock::time_point ended_at_;
  std::deque<std::pair<frame_ptr, size_t>> backlog_;  // frame, raw output bytes
  size_t backlog_bytes_ = 0;
  std::vector<std::shared_ptr<subscriber>> subs_;
  frame_ptr end_frame_;
};

class process_table {
 public:
  static process_table& instance();

  /// Forks and execs; `first` (may be null) is attached before any output
  /// is produced. Throws agent_error (e.g. not_found for a missing binary).
  std::shared_ptr<process> spawn(const spawn_options& opts, std::shared_ptr<subscriber>* first);

  std::shared_ptr<process> find_pid(int pid);
  /// Most recent process with the tag (running ones preferred).
  std::shared_ptr<process> find_tag(const std::string& tag);
  std::vector<std::shared_ptr<process>> running();

  /// Starts the reaper thread (waitpid(-1) loop).
  void start_reaper();
  /// SIGTERM every running process group, wait up to `grace`, then SIGKILL.
  void terminate_all(std::chrono::milliseconds grace);

 private:
  void reaper_loop();
  void purge_locked();

  std::mutex mu_;
  std::map<int, std::shared_ptr<process>> procs_;
  std::mutex child_mu_;
  std::condition_variable child_cv_;  // signalled after each fork
  uint64_t forks_ = 0;                // guarded by child_mu_
};

/// Go-style status ("exit status 1", "signal: killed") for a wait status.
std::string wait_status_string(int wait_status);

}  // namespace sandboxd::agent
