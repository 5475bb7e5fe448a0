#include "http/envd_stream.hpp"

#include <poll.h>

#include <algorithm>
#include <cstring>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"
#include "http/connect_protocol.hpp"
#include "runtime/agent_client.hpp"

namespace sandboxd::http {

using namespace std::chrono;

connect_relay::connect_relay(caf::actor_system& sys, options opts, int client_fd)
  : self_(std::make_unique<caf::scoped_actor>(sys)), opts_(std::move(opts)),
    client_fd_(client_fd), started_(steady_clock::now()), last_sent_(started_) {}

connect_relay::~connect_relay() = default; // the stream actor sees us go

result<std::unique_ptr<connect_relay>>
connect_relay::open(const envd_call& call, const json& request, options opts) {
  std::unique_ptr<connect_relay> r{new connect_relay(call.ctx->sys, std::move(opts), call.client_fd)};
  auto& self = *r->self_;
  auto sink = caf::actor_cast<caf::actor>(self);
  std::optional<failure> err;
  self->request(call.ctx->registry, seconds(10), atom::lookup::value, call.sandbox_id)
    .receive(
      [&](sandbox_actor& sb) {
        self->request(sb, seconds(10), atom::relay::value, request.dump(), sink)
          .receive([&](caf::actor& stream) { r->stream_ = std::make_unique<caf::actor>(stream); },
                   [&](caf::error& e) { err = from_error(e); });
      },
      [&](caf::error& e) { err = from_error(e); });
  if (err)
    return *err;
  // The first frame decides between a stream and an error answer.
  std::optional<json> first;
  self->receive([&](atom::frame, std::string& text) { first = json::parse(text); },
                caf::after(seconds(30)) >> [] {});
  if (!first)
    return bad_gateway("sandbox agent did not answer");
  self->send(*r->stream_, atom::ack::value, uint32_t{1});
  if (first->value("type", "") == "error")
    return failure{first->value("status", 502), first->value("message", "agent error")};
  r->on_frame(*first);
  return r;
}

void connect_relay::on_frame(const json& f) {
  if (f.value("type", "") == "error") {
    pending_ += connect::end_stream(
      failure{f.value("status", 502), f.value("message", "sandbox agent error")});
    finished_ = true;
    return;
  }
  if (f.value("timed_out", false)) {
    pending_ += connect::end_stream(failure{504, "deadline exceeded"});
    finished_ = true;
    return;
  }
  if (auto msg = opts_.translate(f))
    pending_ += connect::envelope(*msg);
  if (f.value("type", "") == "result" || f.value("type", "") == "end") {
    pending_ += connect::end_stream();
    finished_ = true;
  }
}

void connect_relay::pump() {
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
  wait = std::clamp(wait, milliseconds(0), milliseconds(1000));
  bool got = false;
  (*self_)->receive(
    [&](atom::frame, std::string& text) {
      got = true;
      on_frame(json::parse(text));
    },
    caf::after(wait) >> [] {});
  if (got)
    (*self_)->send(*stream_, atom::ack::value, uint32_t{1});
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
  if (aborted_)
    return -1;
  if (pending_.empty())
    return 0;
  auto n = std::min(max, pending_.size());
  std::memcpy(buf, pending_.data(), n);
  pending_.erase(0, n);
  last_sent_ = steady_clock::now();
  return static_cast<ssize_t>(n);
}

envd_reply stream_reply(std::unique_ptr<connect_relay> relay) {
  envd_reply r;
  r.status = 200;
  r.content_type = "application/connect+json";
  r.stream = std::move(relay);
  return r;
}

} // namespace sandboxd::http
