// The worker's end of the tunnel: an actor that takes a front's messages and
// hands them to its epoll thread (actors/tunnel_pump.hpp).
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "actors/tunnel.hpp"
#include "actors/tunnel_pump.hpp"
#include "core/ids.hpp"

namespace sandboxd {

namespace {

struct tunnel_back_state {
  std::shared_ptr<tunnel_pump> pump;
  std::function<result<std::string>(const std::string&)> socket_of;
  std::set<caf::actor_addr> watched; // fronts monitored: their connections end with them
  static inline const char* name = "tunnel_back";

  // Destroyed when the actor exits (CAF 0.17 stateful actors): the epoll
  // thread ends with it, closing every connection and telling the fronts.
  // A short join: the thread only finishes its current round.
  ~tunnel_back_state() {
    if (pump)
      pump->stop();
  }
};

using back_pointer = tunnel_back_actor::stateful_pointer<tunnel_back_state>;

tunnel_back_actor::behavior_type
back_behavior(back_pointer self, std::shared_ptr<tunnel_pump> pump,
              std::function<result<std::string>(const std::string&)> socket_of) {
  // Set before the first message: the behavior is made at the actor's start.
  self->state.pump = std::move(pump);
  self->state.socket_of = std::move(socket_of);
  self->set_down_handler([self](caf::down_msg& m) {
    self->state.watched.erase(m.source);
    self->state.pump->lost(m.source);
  });
  // Each message names its connection by the front's number; the pump
  // takes it only from the front that opened it (the sender).
  auto sender = [self] { return caf::actor_cast<caf::actor_addr>(self->current_sender()); };
  return {
    [self](atom::tunnel_open, uint64_t conn, const std::string& id) {
      auto front = self->current_sender();
      if (!front)
        return; // no one to answer
      auto& st = self->state;
      if (st.watched.insert(caf::actor_cast<caf::actor_addr>(front)).second)
        self->monitor(front);
      if (!is_valid_sandbox_id(id)) {
        st.pump->refuse(std::move(front), conn);
        return;
      }
      // Only a path of this worker's choosing: the message names a sandbox.
      auto path = st.socket_of(id);
      if (!path) {
        spdlog::debug("tunnel: no agent socket for {}: {}", id, path.error().message);
        st.pump->refuse(std::move(front), conn);
        return;
      }
      st.pump->connect(std::move(front), conn, std::move(*path));
    },
    [self, sender](atom::tunnel_data, uint64_t conn, std::string& bytes) {
      self->state.pump->data(sender(), conn, std::move(bytes));
    },
    [self, sender](atom::tunnel_ack, uint64_t conn, uint64_t n) {
      self->state.pump->ack(sender(), conn, n);
    },
    [self, sender](atom::tunnel_eof, uint64_t conn) { self->state.pump->eof(sender(), conn); },
    [self, sender](atom::tunnel_close, uint64_t conn) {
      self->state.pump->close(sender(), conn);
    },
  };
}

} // namespace

result<tunnel_back_actor> spawn_tunnel_back(
  caf::actor_system& sys,
  std::function<result<std::string>(const std::string& sandbox_id)> socket_of,
  tunnel_limits limits) {
  auto pump = tunnel_pump::create(limits);
  if (!pump)
    return pump.error();
  auto back = sys.spawn(back_behavior, *pump, std::move(socket_of));
  (*pump)->run(caf::actor_cast<caf::actor_addr>(back));
  return back;
}

} // namespace sandboxd
