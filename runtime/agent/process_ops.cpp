#include "runtime/agent/process_ops.hpp"
#include "runtime/agent/secrets.hpp"

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "runtime/agent/connection.hpp"
#include "runtime/agent/process_table.hpp"
#include "runtime/agent/request.hpp"
#include "runtime/agent/sandbox_env.hpp"
#include "runtime/base64.hpp"

namespace sandboxd::agent {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> string_array(const json& req, const char* field) {
  std::vector<std::string> out;
  auto it = req.find(field);
  if (it == req.end() || it->is_null()) return out;
  if (!it->is_array()) fail("invalid_argument", std::string("field must be an array of strings: ") + field);
  for (const auto& v : *it) {
    if (!v.is_string()) fail("invalid_argument", std::string("field must be an array of strings: ") + field);
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::map<std::string, std::string> string_map(const json& req, const char* field) {
  std::map<std::string, std::string> out;
  auto it = req.find(field);
  if (it == req.end() || it->is_null()) return out;
  if (!it->is_object()) fail("invalid_argument", std::string("field must be an object of strings: ") + field);
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) fail("invalid_argument", std::string("field must be an object of strings: ") + field);
    if (k.empty() || k.find('=') != std::string::npos)
      fail("invalid_argument", "invalid environment variable name: " + k);
    out[k] = v.get<std::string>();
  }
  return out;
}

unsigned short dimension(const json& obj, const char* field, unsigned short fallback) {
  auto v = optional_int(obj, field);
  if (!v) return fallback;
  if (*v < 1 || *v > 65535) fail("invalid_argument", std::string("field out of range: ") + field);
  return static_cast<unsigned short>(*v);
}

// The sandbox's environment, then the user's identity, then the request's env.
std::vector<std::string> build_env(const user_info& user, const std::map<std::string, std::string>& extra, bool pty) {
  std::vector<std::pair<std::string, std::string>> env;
  auto set = [&](const std::string& k, const std::string& v) {
    for (auto& kv : env) {
      if (kv.first == k) {
        kv.second = v;
        return;
      }
    }
    env.emplace_back(k, v);
  };
  auto base = sandbox_env();
  for (const auto& [k, v] : base) set(k, v);
  set("HOME", user.home);
  set("USER", user.name);
  set("LOGNAME", user.name);
  if (!base.count("PATH")) set("PATH", kDefaultPath);
  if (pty && !base.count("TERM")) set("TERM", "xterm-256color");
  for (const auto& [k, v] : extra) set(k, v);
  std::vector<std::string> out;
  out.reserve(env.size());
  for (auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// Sends a process's frames to the client until its end frame, the client
// disconnecting, or the client falling too far behind. The process is
// unaffected either way.
void stream_to_client(int fd, const std::shared_ptr<process>& proc, const std::shared_ptr<subscriber>& sub) {
  std::deque<frame_ptr> frames;
  std::deque<frame_ptr> unsent;
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {sub->wake_fd, POLLIN, 0}};
    int r = ::poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) {
      char junk[4096];
      ssize_t n = ::recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
    }
    if (fds[1].revents) {
      sub->clear_wake();
      auto state = proc->take(sub, frames);
      bool ok = true;
      while (!frames.empty()) {
        if (!send_encoded(fd, *frames.front())) {
          ok = false;
          unsent.swap(frames);
          break;
        }
        frames.pop_front();
      }
      if (!ok || state != process::take_state::more) break;
    }
  }
  proc->detach(sub, std::move(unsent));
}

std::shared_ptr<process> find_process(const json& req) {
  auto pid = optional_int(req, "pid");
  std::shared_ptr<process> p;
  if (pid) {
    p = process_table::instance().find_pid(static_cast<int>(*pid));
  } else if (auto tag = optional_string(req, "tag")) {
    p = process_table::instance().find_tag(*tag);
  } else {
    fail("invalid_argument", "missing required field: pid (or tag)");
  }
  if (!p) fail("not_found", "process not found");
  return p;
}

int parse_signal(const json& req) {
  auto it = req.find("signal");
  if (it == req.end() || it->is_null()) fail("invalid_argument", "missing required field: signal");
  if (it->is_number_integer()) {
    int s = it->get<int>();
    if (s < 1 || s > 64) fail("invalid_argument", "invalid signal: " + std::to_string(s));
    return s;
  }
  if (!it->is_string()) fail("invalid_argument", "field must be a string: signal");
  std::string name = it->get<std::string>();
  for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  static const std::map<std::string, int> known = {
      {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},   {"QUIT", SIGQUIT},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"WINCH", SIGWINCH}};
  auto k = known.find(name);
  if (k == known.end()) fail("invalid_argument", "unsupported signal: " + it->get<std::string>());
  return k->second;
}

}  // namespace

void handle_exec(int fd, const json& req) {
  spawn_options o;
  o.cmd = required_string(req, "cmd");
  if (o.cmd.empty()) fail("invalid_argument", "cmd must not be empty");
  o.args = string_array(req, "args");
  o.request_env = string_map(req, "env");
  o.user = request_user(req);
  if (auto cwd = optional_string(req, "cwd"); cwd && !cwd->empty()) {
    o.cwd = resolve_path(o.user, *cwd);
    if (!is_dir(o.cwd)) {
      struct stat st;
      if (::stat(o.cwd.c_str(), &st) == 0) fail("invalid_argument", "cwd is not a directory: " + o.cwd);
      fail("not_found", "cwd does not exist: " + o.cwd);
    }
  } else if (is_dir("/workspace")) {
    o.cwd = "/workspace";
  } else if (is_dir(o.user.home)) {
    o.cwd = o.user.home;
  } else {
    o.cwd = "/";
  }
  o.timeout_ms = optional_int(req, "timeout_ms").value_or(0);
  if (o.timeout_ms < 0) fail("invalid_argument", "timeout_ms must not be negative");
  o.stdin_pipe = optional_bool(req, "stdin", false);
  o.tag = optional_string(req, "tag").value_or("");
  if (auto pty = req.find("pty"); pty != req.end() && !pty->is_null()) {
    if (!pty->is_object()) fail("invalid_argument", "field must be an object: pty");
    o.pty = true;
    o.cols = dimension(*pty, "cols", 80);
    o.rows = dimension(*pty, "rows", 24);
  }
  // Secret variables reach the process but never its listing or output.
  auto with_secrets = o.request_env;
  for (auto& [k, v] : string_map(req, "secret_env")) {
    add_secret(v);
    with_secrets[k] = v;
  }
  o.env = build_env(o.user, with_secrets, o.pty);

  std::shared_ptr<subscriber> sub;
  auto proc = process_table::instance().spawn(o, &sub);
  if (!send_frame(fd, json{{"type", "start"}, {"pid", proc->pid()}})) {
    proc->detach(sub);
    return;
  }
  stream_to_client(fd, proc, sub);
}

void handle_connect(int fd, const json& req) {
  auto proc = find_process(req);
  auto sub = proc->attach();
  if (!send_frame(fd, json{{"type", "start"}, {"pid", proc->pid()}})) {
    proc->detach(sub);
    return;
  }
  stream_to_client(fd, proc, sub);
}

void handle_list_processes(int fd, const json&) {
  json list = json::array();
  for (const auto& p : process_table::instance().running()) list.push_back(p->describe());
  send_frame(fd, json{{"type", "result"}, {"processes", std::move(list)}});
}

void handle_input(int fd, const json& req) {
  auto proc = find_process(req);
  auto data = base64::decode(required_string(req, "data"));
  if (!data) fail("invalid_argument", "data is not valid base64");
  proc->write_input(*data);
  send_frame(fd, json{{"type", "result"}});
}

void handle_close_stdin(int fd, const json& req) {
  find_process(req)->close_stdin();
  send_frame(fd, json{{"type", "result"}});
}

void handle_signal(int fd, const json& req) {
  auto proc = find_process(req);
  proc->send_signal(parse_signal(req));
  send_frame(fd, json{{"type", "result"}});
}

void handle_resize(int fd, const json& req) {
  auto proc = find_process(req);
  auto cols = required_int(req, "cols");
  auto rows = required_int(req, "rows");
  if (cols < 1 || cols > 65535) fail("invalid_argument", "field out of range: cols");
  if (rows < 1 || rows > 65535) fail("invalid_argument", "field out of range: rows");
  proc->resize(static_cast<unsigned short>(cols), static_cast<unsigned short>(rows));
  send_frame(fd, json{{"type", "result"}});
}

// Sets variables for every later process of the sandbox (the host claiming
// a warm sandbox for a caller whose env vars it did not know at boot).
void handle_set_env(int fd, const json& req) {
  set_sandbox_env(string_map(req, "env"));
  send_frame(fd, json{{"type", "result"}});
}

}  // namespace sandboxd::agent
