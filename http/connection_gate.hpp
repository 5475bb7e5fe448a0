// How many connections a listener holds, in all and per client address: an
// idle connection costs a descriptor (and on the envd listener a thread), so
// one client opening them by the thousand must neither exhaust the server's
// descriptors (creates and execs need them too) nor lock other clients out.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sandboxd::http {

struct connection_limits {
  size_t total = 4096;      // per listener
  size_t per_client = 2048; // per client address, per listener
  // Refused connections being told why (answer sent, waiting for the
  // client to close); past these, a refusal hangs up at once.
  size_t refusing = 256;
};

/// The limits asked for, lowered where the open files limit `nofile` could
/// not hold both listeners at their limits beside `max_sandboxes` sandboxes'
/// own descriptors. With `tls`, an API connection takes three descriptors
/// (the client's, the TLS front's to the listener, the listener's).
/// `lowered` tells whether it had to.
connection_limits fit_connection_limits(connection_limits asked, size_t nofile,
                                        size_t max_sandboxes, bool* lowered = nullptr,
                                        bool tls = false);

/// What counts as one client: an IPv4 address, or an IPv6 address's /64
/// (one host is handed a whole /64).
std::string client_key(const std::string& address);

/// Counts a listener's open connections. Thread-safe: the listener's
/// workers share one.
class connection_gate {
public:
  explicit connection_gate(connection_limits limits) : limits_(limits) {}

  enum class verdict {
    admit,   // counted against the limits
    explain, // over a limit: answer why, then close (counted as refusing)
    hang_up, // over a limit while many are being refused: close at once
  };
  /// Decides on a new connection from `client` and counts it as decided.
  verdict admit(const std::string& client);
  /// Uncounts a connection `admit` let in (`was` admit) or was refusing
  /// (`was` explain).
  void release(const std::string& client, verdict was = verdict::admit);

  size_t open() const;

private:
  connection_limits limits_;
  mutable std::mutex mtx_;
  size_t open_ = 0;
  size_t refusing_ = 0;
  std::unordered_map<std::string, size_t> by_client_;
};

/// One counted connection (admitted or refusing): releases its count once,
/// when told or at the latest when destroyed with the connection's state.
class connection_ticket {
public:
  connection_ticket(std::shared_ptr<connection_gate> gate, std::string client,
                    connection_gate::verdict was = connection_gate::verdict::admit)
    : gate_(std::move(gate)), client_(std::move(client)), was_(was) {}
  ~connection_ticket() { release(); }
  connection_ticket(const connection_ticket&) = delete;
  connection_ticket& operator=(const connection_ticket&) = delete;
  void release();

private:
  std::shared_ptr<connection_gate> gate_;
  std::string client_;
  connection_gate::verdict was_;
  std::once_flag released_;
};

} // namespace sandboxd::http
