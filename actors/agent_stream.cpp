#include "actors/agent_stream.hpp"

#include <nlohmann/json.hpp>

#include "runtime/agent_client.hpp"
#include "runtime/agent_protocol.hpp"

namespace sandboxd {

namespace {

using json = nlohmann::json;
using namespace std::chrono;

json error_frame(const failure& f) {
  return {{"type", "error"}, {"code", "unavailable"}, {"message", f.message}, {"status", f.status}};
}

} // namespace

caf::actor spawn_agent_stream(caf::actor_system& sys, std::string socket,
                              std::string request, caf::actor sink, uint32_t window) {
  // Detached: reading the agent socket blocks this actor's own thread only.
  return sys.spawn<caf::detached>([=](caf::blocking_actor* self) {
    self->monitor(sink);
    bool sink_gone = false;
    uint32_t in_flight = 0;
    auto on_ack = [&](atom::ack, uint32_t n) { in_flight -= std::min(in_flight, n); };
    auto on_down = [&](caf::down_msg&) { sink_gone = true; };
    auto deliver = [&](const json& f) {
      self->send(sink, atom::frame::value, f.dump());
      ++in_flight;
    };
    auto parsed = json::parse(request, nullptr, false);
    auto conn = agent::connection::open(socket, parsed);
    if (!conn) {
      deliver(error_frame(conn.error()));
      return;
    }
    for (;;) {
      // Credit and the sink's fate arrive in the mailbox; wait for credit
      // when the window is full, else just look.
      auto wait = in_flight >= window ? milliseconds(1000) : milliseconds(0);
      self->receive(on_ack, on_down, caf::after(wait) >> [] {});
      if (sink_gone)
        return;
      if (in_flight >= window)
        continue;
      json f;
      std::string detail;
      auto st = (*conn)->next(f, milliseconds(200), &detail);
      if (st == agent::connection::next_status::timeout)
        continue;
      if (st == agent::connection::next_status::closed) {
        deliver(error_frame(bad_gateway("sandbox agent stream ended: " + detail)));
        return;
      }
      if (f.value("type", "") == "error" && !f.contains("status"))
        f["status"] = agent::failure_from_error_frame(f).status;
      deliver(f);
      if (agent::is_terminal(f))
        return;
    }
  });
}

} // namespace sandboxd
