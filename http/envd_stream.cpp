#include "http/envd_stream.hpp"

#include <poll.h>

#include <algorithm>
#include <cstring>

#include <caf/all.hpp>

#include "actors/agent_frame_json.hpp"
#include "actors/interfaces.hpp"
#include "http/connect_protocol.hpp"
#include "runtime/agent_client.hpp"

namespace sandboxd::http {

using namespace std::chrono;

namespace {

// A frame as the stream actor sent it (text it dumped itself); nullopt for
// anything else, which ends the stream like a lost agent.
std::optional<json> frame_of(const agent_frame& frame) {
  auto j = parse_frame(frame);
  if (!j || !j->contains("type") || !(*j)["type"].is_string())
    return std::nullopt;
  return std::move(*j);
}

// A boolean field, false when absent or not a boolean: this code runs on
// the connection's thread, where an exception would end the server.
bool flag(const json& f, const char* name) {
  auto it = f.find(name);
  return it != f.end() && it->is_boolean() && it->get<bool>();
}

const failure stream_lost = bad_gateway("sandbox agent stream ended without an answer");

} // namespace

struct connect_relay::upstream {
  agent_stream_actor actor;
};

connect_relay::connect_relay(caf::actor_system& sys, options opts, int client_fd)
  : self_(std::make_unique<caf::scoped_actor>(sys)), opts_(std::move(opts)),
    client_fd_(client_fd), started_(steady_clock::now()), last_sent_(started_) {}

connect_relay::~connect_relay() = default; // the stream actor sees us go

result<std::unique_ptr<connect_relay>>
connect_relay::open(const envd_call& call, const json& request, options opts) {
  std::unique_ptr<connect_relay> r{new connect_relay(call.ctx->sys, std::move(opts), call.client_fd)};
  auto& self = *r->self_;
  // The scoped actor takes what a sink takes (and the stream's down message).
  auto sink = caf::actor_cast<agent_sink_actor>(self);
  std::optional<failure> err;
  self->request(call.ctx->registry, seconds(10), atom::lookup::value, call.sandbox_id)
    .receive(
      [&](sandbox_actor& sb) {
        self->request(sb, seconds(10), atom::relay::value, to_frame(request), sink)
          .receive(
            [&](agent_stream_actor& stream) { r->stream_.reset(new upstream{std::move(stream)}); },
            [&](caf::error& e) { err = from_error(e); });
      },
      [&](caf::error& e) { err = from_error(e); });
  if (err)
    return *err;
  // A stream actor that dies without its terminal frame ends the stream.
  self->monitor(r->stream_->actor);
  // The first frame decides between a stream and an error answer.
  std::optional<json> first;
  bool lost = false;
  self->receive([&](atom::frame, agent_frame& frame) { first = frame_of(frame); lost = !first; },
                [&](atom::broken, agent_stream_error& why) { err = why.why; },
                [&](caf::down_msg&) { lost = true; },
                caf::after(seconds(30)) >> [] {});
  if (err)
    return *err;
  if (lost)
    return stream_lost;
  if (!first)
    return bad_gateway("sandbox agent did not answer");
  self->send(r->stream_->actor, atom::ack::value, uint32_t{1});
  r->on_frame(*first);
  return r;
}

void connect_relay::on_broken(const agent_stream_error& why) {
  finished_ = true;
  if (why.lost) {
    // The sandbox went away mid-stream (killed, its agent died): envd's
    // connection just drops, and the SDKs read a drop as "killed or reached
    // its end of life" after a health probe. What came before is sent, then
    // the connection is cut likewise.
    lost_ = true;
    return;
  }
  pending_ += connect::end_stream(why.why);
}

void connect_relay::on_frame(const json& f) {
  const auto& type = f["type"];
  if (type == "end" && flag(f, "timed_out")) {
    pending_ += connect::end_stream(failure{504, "deadline exceeded"});
    finished_ = true;
    return;
  }
  if (auto msg = opts_.translate(f))
    pending_ += connect::envelope(*msg);
  if (type == "result" || type == "end") {
    pending_ += connect::end_stream();
    finished_ = true;
  }
}

void connect_relay::pump(milliseconds max_wait) {
  auto now = steady_clock::now();
  auto wait = opts_.keepalive - duration_cast<milliseconds>(now - last_sent_);
  if (opts_.deadline) {
    auto left = *opts_.deadline - duration_cast<milliseconds>(now - started_);
    if (left <= milliseconds(0)) {
      pending_ += connect::end_stream(failure{504, "deadline exceeded"});
      finished_ = true;
      return;
    }
    wait = std::min(wait, left);
  }
  // Wake at least once a second to notice a client that went away.
  wait = std::clamp(wait, milliseconds(0), std::min(max_wait, milliseconds(1000)));
  bool got = false;
  (*self_)->receive(
    [&](atom::frame, agent_frame& frame) {
      got = true;
      if (auto f = frame_of(frame)) {
        on_frame(*f);
      } else {
        pending_ += connect::end_stream(stream_lost);
        finished_ = true;
      }
    },
    [&](atom::broken, agent_stream_error& why) { on_broken(why); },
    [&](caf::down_msg&) {
      // Frames sent before the actor ended were received first: ending
      // without a terminal frame is a lost stream, cut like a lost agent.
      if (!finished_) {
        lost_ = true;
        finished_ = true;
      }
    },
    caf::after(wait) >> [] {});
  if (got)
    (*self_)->send(stream_->actor, atom::ack::value, uint32_t{1});
  if (client_fd_ >= 0) {
    pollfd p{client_fd_, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      aborted_ = true;
      return;
    }
  }
  if (!got && steady_clock::now() - last_sent_ >= opts_.keepalive
      && !opts_.keepalive_message.is_null())
    pending_ += connect::envelope(opts_.keepalive_message);
}

ssize_t connect_relay::read(char* buf, size_t max) {
  while (pending_.empty() && !finished_ && !aborted_)
    pump();
  if (aborted_ || (pending_.empty() && lost_))
    return -1;
  if (pending_.empty())
    return 0;
  auto n = std::min(max, pending_.size());
  std::memcpy(buf, pending_.data(), n);
  pending_.erase(0, n);
  last_sent_ = steady_clock::now();
  return static_cast<ssize_t>(n);
}

bool connect_relay::wait(milliseconds max_wait) {
  if (pending_.empty() && !finished_ && !aborted_)
    pump(max_wait);
  return !finished_ && !aborted_;
}

envd_reply stream_reply(std::unique_ptr<connect_relay> relay) {
  envd_reply r;
  r.status = 200;
  r.content_type = "application/connect+json";
  r.stream = std::move(relay);
  return r;
}

} // namespace sandboxd::http
