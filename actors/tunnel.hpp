// A byte tunnel for the cluster's data plane: a sandbox on a worker is
// reached on the control node through a local unix socket that behaves like
// the sandbox's agent socket. Each connection accepted there (the front) is
// carried over CAF messages (tunnel_peer_actor, actors/interfaces.hpp) to the
// worker (the back), which connects it to the real agent socket; bytes go
// both ways with half-closes, each direction within a window of
// unacknowledged bytes, so a slow reader holds its writer back.
//
//   client ──unix──▶ front (epoll thread) ──tunnel_open/data/eof──▶ back (epoll thread) ──unix──▶ agent
//                          ◀──────────────tunnel_data/ack/eof/close──
//
// One epoll thread per end carries all of its listeners and connections.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"
#include "core/result.hpp"

namespace sandboxd {

class tunnel_pump;

/// Bounds of one tunnel end. `window` and `chunk` must match on both ends:
/// each enforces its own on what it receives.
struct tunnel_limits {
  size_t window = 256 * 1024;  // unacknowledged bytes per connection and direction
  size_t chunk = 64 * 1024;    // bytes per message at most
  size_t per_sandbox = 256;    // open connections of one sandbox (front)
  size_t total = 4096;         // open connections of one end
  // The back retries a connect refused with EAGAIN (the agent's backlog is
  // full) until this has passed, then gives the connection up.
  std::chrono::milliseconds connect_timeout{5000};
};

/// The worker's end. Asked (tunnel_open) by a front to open a connection for
/// sandbox `id`, it connects to `socket_of(id)` (non-blocking, retried for
/// `connect_timeout`) and relays bytes. `socket_of` runs on a CAF thread: a
/// path computation, no I/O (sandbox_runtime::agent_socket). A front that
/// goes away (down) takes its connections with it. Stop it with an exit
/// message (caf::anon_send_exit); its epoll thread ends with it.
/// Fails only when the epoll instance cannot be made (no descriptors).
result<tunnel_back_actor> spawn_tunnel_back(
  caf::actor_system& sys,
  std::function<result<std::string>(const std::string& sandbox_id)> socket_of,
  tunnel_limits limits = {});

/// The control node's end: one listening socket per exposed sandbox in a
/// directory of its own. Thread-safe; the destructor closes every listener
/// and connection (telling the backs) and removes the sockets.
class tunnel_front {
public:
  /// Takes `dir` (created 0700 if missing; must be ours, not a path a
  /// sandbox can change), removes sockets a previous run left in it, and
  /// starts the epoll thread.
  static result<std::unique_ptr<tunnel_front>> start(caf::actor_system& sys, std::string dir,
                                                     tunnel_limits limits = {});
  ~tunnel_front();
  tunnel_front(const tunnel_front&) = delete;
  tunnel_front& operator=(const tunnel_front&) = delete;

  /// Listens on path(sandbox_id) (mode 0600) and carries each connection
  /// accepted there to `back`. 400 for an invalid id, 409 when already
  /// exposed. Watches `back`: when it goes away, lost(back) follows.
  status expose(const std::string& sandbox_id, tunnel_back_actor back);

  /// Closes the sandbox's listener and every connection of it (telling the
  /// back), and removes its socket. Nothing when not exposed.
  void withdraw(const std::string& sandbox_id);

  /// Where the sandbox's socket is (or would be): dir/<id>.sock.
  std::string path(const std::string& sandbox_id) const;

  /// `back` is gone: ends every connection to it (clients see EOF) and hangs
  /// up on new ones to its sandboxes until they are withdrawn. A lost back
  /// stays lost (a worker that rejoins brings a new back).
  void lost(const tunnel_back_actor& back);

  /// Bytes received from backs not yet written to clients (at most one
  /// window per connection).
  uint64_t buffered_bytes() const;

  /// Open connections.
  size_t connections() const;

  /// This end's actor (the sender of everything the backs receive).
  tunnel_front_actor actor() const { return actor_; }

private:
  tunnel_front(std::string dir, std::shared_ptr<tunnel_pump> pump, tunnel_front_actor actor);

  const std::string dir_;
  std::shared_ptr<tunnel_pump> pump_;
  tunnel_front_actor actor_;
  mutable std::mutex mu_; // orders expose/withdraw with the pump's queue
  std::map<std::string, caf::actor_addr> exposed_;
  std::set<caf::actor_addr> watched_; // backs with a lost() attached
};

} // namespace sandboxd
