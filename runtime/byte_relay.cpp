#include "runtime/byte_relay.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace sandboxd {

namespace {

// One direction: bytes read from `from` wait in `pending` until `to` takes them.
struct direction {
  int from, to;
  std::string pending;
  size_t cap;
  bool reading = true; // until from's end of stream (or an error)
  bool done = false;   // end passed on: to was half-closed
  uint64_t moved = 0;

  short want_from() const { return reading && pending.size() < cap ? POLLIN : 0; }
  short want_to() const { return !pending.empty() ? POLLOUT : 0; }

  // false on a hard error.
  bool pull() {
    char buf[16 * 1024];
    while (reading && pending.size() < cap) {
      ssize_t n = ::recv(from, buf, std::min(sizeof buf, cap - pending.size()), MSG_DONTWAIT);
      if (n > 0) {
        pending.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) {
        reading = false;
        break;
      }
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      reading = false;
      return errno == ECONNRESET;
    }
    return true;
  }

  bool push() {
    while (!pending.empty()) {
      ssize_t n = ::send(to, pending.data(), pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        moved += static_cast<uint64_t>(n);
        pending.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      return false; // the reader went away
    }
    if (!reading && pending.empty() && !done) {
      ::shutdown(to, SHUT_WR);
      done = true;
    }
    return true;
  }
};

} // namespace

relay_totals relay_bytes(int a, int b, std::chrono::milliseconds idle, size_t buffer) {
  direction ab{a, b, {}, buffer}, ba{b, a, {}, buffer};
  relay_totals totals;
  for (;;) {
    bool ok = ab.pull() && ba.pull() && ab.push() && ba.push();
    if (!ok || (ab.done && ba.done))
      break;
    // A side with nothing to wait for is left out: a hung-up socket would
    // otherwise report POLLHUP at once, over and over.
    short ea = static_cast<short>(ab.want_from() | ba.want_to());
    short eb = static_cast<short>(ba.want_from() | ab.want_to());
    pollfd fds[2] = {{ea ? a : -1, ea, 0}, {eb ? b : -1, eb, 0}};
    int n = ::poll(fds, 2, static_cast<int>(idle.count()));
    if (n == 0) {
      totals.timed_out = true;
      break;
    }
    if (n < 0 && errno != EINTR)
      break;
  }
  totals.a_to_b = ab.moved;
  totals.b_to_a = ba.moved;
  return totals;
}

} // namespace sandboxd
