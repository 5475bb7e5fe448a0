#include "actors/agent_task.hpp"

#include "actors/output_lines.hpp"

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "runtime/agent_client.hpp"
#include "runtime/base64.hpp"
#include "storage/store.hpp"

namespace sandboxd {

namespace {

using json = nlohmann::json;
using namespace std::chrono;

} // namespace

void spawn_agent_task(caf::actor_system& sys, std::string socket, std::string request,
                      std::shared_ptr<store> db, std::string sandbox_id, sandbox_actor parent,
                      bool report) {
  sys.spawn<caf::detached>([=](caf::blocking_actor* self) {
    auto send = [&](auto... xs) {
      if (report)
        self->send(parent, xs...);
    };
    self->monitor(parent);
    bool parent_gone = false;
    auto conn = agent::connection::open(socket, json::parse(request));
    if (!conn) {
      send(atom::agent_end::value, int64_t{-1}, true);
      return;
    }
    output_lines out{"stdout"}, err{"stderr"};
    auto flush_all = [&] {
      std::vector<store::log_line> lines;
      out.flush(now_ms(), lines);
      err.flush(now_ms(), lines);
      log_output(*db, sandbox_id, lines);
    };
    for (;;) {
      self->receive([&](caf::down_msg&) { parent_gone = true; }, caf::after(milliseconds(0)) >> [] {});
      if (parent_gone)
        return;
      json f;
      auto st = (*conn)->next(f, milliseconds(500));
      if (st == agent::connection::next_status::timeout)
        continue;
      if (st == agent::connection::next_status::closed) {
        flush_all();
        send(atom::agent_end::value, int64_t{-1}, true);
        return;
      }
      auto type = f.value("type", "");
      if (type == "start") {
        send(atom::agent_up::value, f.value("pid", int64_t{0}));
      } else if (type == "stdout" || type == "stderr" || type == "pty") {
        auto data = base64::decode(f.value("data", ""));
        std::vector<store::log_line> lines;
        (type == "stderr" ? err : out).feed(data.value_or(""), now_ms(), lines);
        log_output(*db, sandbox_id, lines);
      } else if (type == "end") {
        flush_all();
        // A signalled process reports 128 + the signal, as a shell does.
        int64_t code = f.value("exited", false) ? f.value("exit_code", int64_t{-1})
                                                : 128 + f.value("signal", int64_t{0});
        send(atom::agent_end::value, code, false);
        return;
      } else if (type == "error") {
        flush_all();
        send(atom::agent_end::value, int64_t{-1}, true);
        return;
      }
    }
  });
}

} // namespace sandboxd
