#include "runtime/agent/port_ops.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/agent/connection.hpp"
#include "runtime/agent/request.hpp"
#include "runtime/byte_relay.hpp"

namespace sandboxd::agent {
namespace {

// Idle relays end: the host keeps its own, shorter limits per request.
constexpr auto kIdle = std::chrono::minutes(30);
constexpr int kConnectTimeoutMs = 5000;

// A connected socket to the port on loopback (IPv4 first, then IPv6), or -1.
int connect_loopback(int port) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(static_cast<uint16_t>(port));
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(static_cast<uint16_t>(port));
  v6.sin6_addr = in6addr_loopback;
  const std::pair<const sockaddr*, socklen_t> targets[] = {
      {reinterpret_cast<const sockaddr*>(&v4), sizeof v4},
      {reinterpret_cast<const sockaddr*>(&v6), sizeof v6}};
  for (auto [addr, len] : targets) {
    int s = ::socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) continue;
    int rc = ::connect(s, addr, len);
    if (rc < 0 && errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      int err = 0;
      socklen_t el = sizeof err;
      if (::poll(&p, 1, kConnectTimeoutMs) == 1 && ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
        rc = 0;
    }
    if (rc == 0) {
      int one = 1;
      ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return s;
    }
    ::close(s);
  }
  return -1;
}

}  // namespace

void handle_tcp(int fd, const json& req) {
  auto port = optional_int(req, "port");
  if (!port || *port < 1 || *port > 65535) fail(code::invalid_argument, "port must be an integer from 1 to 65535");
  int up = connect_loopback(static_cast<int>(*port));
  if (up < 0) fail(code::not_found, "port " + std::to_string(*port) + " is not open");
  if (send_frame(fd, json{{"type", "result"}})) relay_bytes(fd, up, kIdle);
  ::close(up);
}

}  // namespace sandboxd::agent
