// Copies bytes both ways between two connected sockets until both directions
// have ended: what a TCP port reached through the agent is, on both sides of
// the agent's socket (the agent between its client and the port inside; the
// host between a proxied client and the agent).
#pragma once

#include <chrono>
#include <cstdint>

namespace sandboxd {

struct relay_totals {
  uint64_t a_to_b = 0;
  uint64_t b_to_a = 0;
  bool timed_out = false; // nothing moved either way for the idle timeout
};

/// Non-blocking, with at most `buffer` bytes in flight per direction (a
/// slow reader holds back its writer, nothing piles up in memory). An end
/// of stream on one side is passed on as a half-close (shutdown SHUT_WR) of
/// the other; the relay returns when both directions ended, on an error, or
/// after `idle` without a byte moving. Neither fd is closed.
relay_totals relay_bytes(int a, int b, std::chrono::milliseconds idle, size_t buffer = 64 * 1024);

} // namespace sandboxd
