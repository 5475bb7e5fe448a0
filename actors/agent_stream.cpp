#include "actors/agent_stream.hpp"

#include <nlohmann/json.hpp>

#include "actors/agent_frame_json.hpp"
#include "actors/output_lines.hpp"
#include "core/clock.hpp"
#include "runtime/base64.hpp"

#include "runtime/agent_client.hpp"
#include "runtime/agent_protocol.hpp"

namespace sandboxd {

namespace {

using json = nlohmann::json;
using namespace std::chrono;

} // namespace

// The log side of a process stream: whole lines, a bounded amount.
class process_log {
public:
  explicit process_log(stream_log to) : to_(std::move(to)) {}

  void frame(const json& f) {
    auto type = f.value("type", "");
    if (type == "stdout" || type == "pty" || type == "stderr") {
      auto& s = type == "stderr" ? err_ : out_;
      auto& budget = type == "stderr" ? err_budget_ : out_budget_;
      auto data = base64::decode(f.value("data", "")).value_or("");
      std::vector<store::log_line> lines;
      if (budget > 0) {
        if (data.size() > budget)
          data.resize(budget);
        budget -= data.size();
        s.feed(data, now_ms(), lines);
        if (budget == 0)
          lines.push_back({now_ms(), type == "stderr" ? "stderr" : "stdout",
                           "[further output of this process is not logged]"});
      }
      write(lines);
    } else if (agent::is_terminal(f)) {
      std::vector<store::log_line> lines;
      out_.flush(now_ms(), lines);
      err_.flush(now_ms(), lines);
      write(lines);
    }
  }

private:
  void write(const std::vector<store::log_line>& lines) {
    log_output(*to_.db, to_.sandbox_id, lines);
  }

  static constexpr size_t limit = 1 << 20;
  stream_log to_;
  output_lines out_{"stdout"}, err_{"stderr"};
  size_t out_budget_ = limit, err_budget_ = limit;
};

agent_stream_actor spawn_agent_stream(caf::actor_system& sys, std::string socket,
                                      agent_frame request, agent_sink_actor sink,
                                      std::optional<stream_log> log_to, uint32_t window) {
  // Detached: reading the agent socket blocks this actor's own thread only.
  // A blocking actor has no typed form: it takes what agent_stream_actor
  // declares (ack) and the sink's down message.
  auto stream = sys.spawn<caf::detached>([=](caf::blocking_actor* self) {
    self->monitor(sink);
    bool sink_gone = false;
    uint32_t in_flight = 0;
    auto on_ack = [&](atom::ack, uint32_t n) { in_flight -= std::min(in_flight, n); };
    auto on_down = [&](caf::down_msg&) { sink_gone = true; };
    auto deliver = [&](const json& f) {
      self->send(sink, atom::frame::value, to_frame(f));
      ++in_flight;
    };
    auto broken = [&](failure why, bool lost = false) {
      self->send(sink, atom::broken::value, agent_stream_error{std::move(why), lost});
    };
    auto parsed = parse_frame(request, 400);
    if (!parsed) {
      broken(parsed.error());
      return;
    }
    std::optional<process_log> plog;
    auto op = parsed->value("op", "");
    if (log_to && (op == "exec" || op == "connect"))
      plog.emplace(*log_to);
    auto conn = agent::connection::open(socket, *parsed);
    if (!conn) {
      broken(conn.error());
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
        // Gone between two frames: the agent (the sandbox) went away, as
        // opposed to an answer that broke off or made no sense.
        broken(bad_gateway("sandbox agent stream ended: " + detail),
               detail == agent::to_string(agent::io_status::eof));
        return;
      }
      if (plog)
        plog->frame(f);
      // Frames arrive checked (agent_answers.hpp); the status of an error
      // is ours to derive, whatever the agent put there.
      if (f["type"] == "error") {
        broken(agent::failure_from_error_frame(f));
        return;
      }
      deliver(f);
      if (agent::is_terminal(f))
        return;
    }
  });
  return caf::actor_cast<agent_stream_actor>(stream);
}

} // namespace sandboxd
