// TLS for the API listener (serve --tls-cert/--tls-key), terminated in front
// of it. Pistache 0.0.5 runs each TLS handshake on its one accept thread
// (pistache#868): a client that opens a connection and says nothing would
// stall every other client. The front does handshakes without blocking, on
// one thread of its own, each bounded in time and their number bounded per
// client and in all, then relays bytes both ways to the plain listener on
// loopback. The listener's per-client limits still see the real client:
// forwarded_clients names it for each connection the front opens.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/result.hpp"
#include "runtime/tls_common.hpp"

namespace sandboxd::http {

/// The client (as connection_gate keys it) behind each loopback connection
/// the front opens, by that connection's local port.
class forwarded_clients {
public:
  void add(uint16_t port, std::string client);
  void remove(uint16_t port);
  std::optional<std::string> find(uint16_t port) const;

private:
  mutable std::mutex mtx_;
  std::unordered_map<uint16_t, std::string> by_port_;
};

struct tls_front_limits {
  size_t connections = 4096; // open at once, in handshake or relayed
  size_t handshakes = 1024;  // in handshake at once (one costs a few KiB)
  size_t handshakes_per_client = 16;
  // Handshakes a client may start: this many at once, then this many a
  // second. Each costs the front's one thread a key exchange and a
  // signature: without a rate, one client that hangs up and reconnects
  // keeps the thread busy and every other client's handshake waits.
  double handshake_burst = 128;
  double handshakes_per_second = 32;
};

class tls_front {
public:
  /// Listens on "HOST:PORT" with `ctx`, relaying each connection to
  /// 127.0.0.1:`inner_port` once its handshake is done.
  static result<std::unique_ptr<tls_front>>
  start(const std::string& listen, ssl_ctx_ptr ctx, uint16_t inner_port,
        std::shared_ptr<forwarded_clients> clients, tls_front_limits limits);
  ~tls_front();
  /// Closes the listener and every connection.
  void stop();

  struct impl;

private:
  tls_front() = default;
  std::unique_ptr<impl> impl_;
};

} // namespace sandboxd::http
