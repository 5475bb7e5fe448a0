// For the test servers on unix sockets: one accept that gives up soon, so
// that their loops can notice when to stop.
#pragma once

#include <poll.h>
#include <sys/socket.h>

namespace sandboxd::fakes {

/// A connection accepted on `listen_fd` within 50 ms, or -1.
inline int accept_soon(int listen_fd) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, 50) <= 0)
    return -1;
  return ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
}

} // namespace sandboxd::fakes
