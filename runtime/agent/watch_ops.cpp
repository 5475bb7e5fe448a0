#include "runtime/agent/watch_ops.hpp"

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

#include "runtime/agent/connection.hpp"
#include "runtime/agent/fs_identity.hpp"
#include "runtime/agent/request.hpp"
#include "runtime/agent/watch_inotify.hpp"
#include "runtime/agent_protocol.hpp"

namespace sandboxd::agent {
namespace {

constexpr int64_t kMaxKeepaliveMs = 24ll * 3600 * 1000;

// True once the client closed its end. Stray bytes from the client are dropped.
bool client_gone(int fd, short revents) {
  if (revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
  if (!(revents & POLLIN)) return false;
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (n == 0) return true;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace

void handle_watch(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  bool recursive = optional_bool(req, "recursive", false);
  int64_t keepalive_ms = std::min<int64_t>(optional_int(req, "keepalive_ms").value_or(0), kMaxKeepaliveMs);
  auto keepalive = std::chrono::milliseconds(keepalive_ms > 0 ? keepalive_ms : 0);
  fs_identity as(user);  // also for subdirectories watched later
  inotify_tree tree(path, recursive);
  if (!send_frame(fd, json{{"type", "start"}})) return;
  auto last_sent = clock::now();
  std::vector<watch_event> events;
  for (;;) {
    int timeout = -1;
    if (keepalive_ms > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(last_sent + keepalive - clock::now());
      timeout = left.count() > 0 ? static_cast<int>(left.count()) : 0;
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {tree.fd(), POLLIN, 0}};
    int r = ::poll(fds, 2, timeout);
    if (r < 0 && errno != EINTR) fail_errno(errno, "poll");
    if (r > 0 && client_gone(fd, fds[0].revents)) return;
    if (r > 0 && fds[1].revents) {
      events.clear();
      bool alive = tree.read_events(events);
      for (const auto& e : events) {
        json frame = to_json(e);
        frame["type"] = "fs";
        if (!send_frame(fd, frame)) return;
        last_sent = clock::now();
      }
      if (!alive) {
        send_frame(fd, json{{"type", "end"}});
        return;
      }
    }
    if (keepalive_ms > 0 && clock::now() - last_sent >= keepalive) {
      if (!send_frame(fd, json{{"type", "keepalive"}})) return;
      last_sent = clock::now();
    }
  }
}

}  // namespace sandboxd::agent
