#include "runtime/agent/server.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/agent/connection.hpp"
#include "runtime/agent/file_ops.hpp"
#include "runtime/agent/port_ops.hpp"
#include "runtime/agent/process_ops.hpp"
#include "runtime/agent/request.hpp"
#include "runtime/agent/sandbox_env.hpp"
#include "runtime/agent/watch_ops.hpp"
#include "runtime/agent/watchers.hpp"
#include "runtime/agent_protocol.hpp"

namespace sandboxd::agent {
namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);

bool make_parent_dirs(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return true;
  std::string dir = path.substr(0, slash);
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) < 0 && errno != EEXIST) return false;
  }
  return true;
}

void handle_ping(int fd, const json&) {
  send_frame(fd, json{{"type", "result"}, {"pid", ::getpid()}, {"version", kAgentVersion}});
}

void handle_env(int fd, const json&) {
  send_frame(fd, json{{"type", "result"}, {"env", sandbox_env()}});
}

using handler = void (*)(int, const json&);

handler find_handler(const std::string& op) {
  static const std::pair<const char*, handler> table[] = {
      {"ping", handle_ping},
      {"exec", handle_exec},
      {"stat", handle_stat},
      {"list", handle_list},
      {"read", handle_read},
      {"read_stream", handle_read_stream},
      {"write", handle_write},
      {"write_stream", handle_write_stream},
      {"mkdir", handle_mkdir},
      {"remove", handle_remove},
      {"move", handle_move},
      {"env", handle_env},
      {"set_env", handle_set_env},
      {"list_processes", handle_list_processes},
      {"connect", handle_connect},
      {"input", handle_input},
      {"close_stdin", handle_close_stdin},
      {"signal", handle_signal},
      {"resize", handle_resize},
      {"watch", handle_watch},
      {"watcher_create", handle_watcher_create},
      {"watcher_events", handle_watcher_events},
      {"watcher_remove", handle_watcher_remove},
      {"tcp", handle_tcp},
  };
  for (const auto& [name, h] : table)
    if (op == name) return h;
  return nullptr;
}

}  // namespace

void serve_connection(int fd) {
  json req;
  std::string detail;
  io_status s = read_frame(fd, req, clock::now() + kRequestTimeout, &detail);
  if (s == io_status::ok) {
    try {
      std::string op = required_string(req, "op");
      handler h = find_handler(op);
      if (!h) fail("invalid_argument", "unknown op: " + op);
      h(fd, req);
    } catch (const agent_error& e) {
      send_frame(fd, error_frame(e.code, e.what()));
    } catch (const std::exception& e) {
      send_frame(fd, error_frame(code::internal, e.what()));
    }
  } else if (s == io_status::malformed || s == io_status::too_large) {
    // Best effort: tell the client, then drop the connection.
    write_frame(fd, error_frame(code::invalid_argument, detail), clock::now() + std::chrono::seconds(1));
  }
  ::close(fd);
}

int listen_on(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "sandboxd-agent: socket path too long: %s\n", path.c_str());
    return -1;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (!make_parent_dirs(path)) {
    std::fprintf(stderr, "sandboxd-agent: cannot create directory for %s: %s\n", path.c_str(), std::strerror(errno));
    return -1;
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      std::fprintf(stderr, "sandboxd-agent: %s exists and is not a socket\n", path.c_str());
      return -1;
    }
    ::unlink(path.c_str());
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // Owner-only from birth, by umask: under gVisor the socket is a host file
  // its gofer made, and a chmod of it is refused.
  mode_t old_mask = ::umask(0177);
  bool bound = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::umask(old_mask);
  if (!bound || ::listen(fd, 128) < 0) {
    std::fprintf(stderr, "sandboxd-agent: cannot listen on %s: %s\n", path.c_str(), std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

void serve_forever(int listen_fd) {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    try {
      std::thread(serve_connection, fd).detach();
    } catch (const std::exception&) {
      ::close(fd);
    }
  }
}

}  // namespace sandboxd::agent
