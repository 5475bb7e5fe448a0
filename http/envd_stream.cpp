#include "http/envd_stream.hpp"

#include <poll.h>

#include <algorithm>
#include <cstring>

#include "http/connect_protocol.hpp"

namespace sandboxd::http {

using namespace std::chrono;

connect_relay::connect_relay(std::unique_ptr<agent::connection> conn, options opts)
  : conn_(std::move(conn)), opts_(std::move(opts)),
    started_(steady_clock::now()), last_sent_(started_) {}

result<std::unique_ptr<connect_relay>>
connect_relay::open(const envd_call& call, const json& request, options opts) {
  auto conn = agent::connection::open(call.socket, request);
  if (!conn)
    return conn.error();
  // The first frame decides between a stream and an error answer.
  json first;
  std::string detail;
  auto st = (*conn)->next(first, seconds(30), &detail);
  if (st != agent::connection::next_status::frame)
    return bad_gateway("sandbox agent did not answer: " + detail);
  if (first.value("type", "") == "error")
    return agent::failure_from_error_frame(first);
  opts.client_fd = call.client_fd;
  auto relay = std::make_unique<connect_relay>(std::move(*conn), std::move(opts));
  if (auto msg = relay->opts_.translate(first))
    relay->pending_ += connect::envelope(*msg);
  if (agent::is_terminal(first)) {
    relay->pending_ += connect::end_stream();
    relay->finished_ = true;
  }
  return relay;
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
  pollfd fds[2] = {{conn_->fd(), POLLIN, 0}, {opts_.client_fd, POLLRDHUP, 0}};
  int n = ::poll(fds, opts_.client_fd >= 0 ? 2 : 1, static_cast<int>(wait.count()));
  if (n > 0 && opts_.client_fd >= 0 && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
    aborted_ = true;
    return;
  }
  if (n > 0 && fds[0].revents) {
    json frame;
    std::string detail;
    auto st = conn_->next(frame, milliseconds(0), &detail);
    if (st == agent::connection::next_status::closed) {
      pending_ += connect::end_stream(bad_gateway("sandbox agent stream ended: " + detail));
      finished_ = true;
      return;
    }
    if (st == agent::connection::next_status::frame) {
      if (frame.value("type", "") == "error") {
        pending_ += connect::end_stream(agent::failure_from_error_frame(frame));
        finished_ = true;
        return;
      }
      if (frame.value("timed_out", false)) {
        pending_ += connect::end_stream(failure{504, "deadline exceeded"});
        finished_ = true;
        return;
      }
      if (auto msg = opts_.translate(frame))
        pending_ += connect::envelope(*msg);
      if (agent::is_terminal(frame)) {
        pending_ += connect::end_stream();
        finished_ = true;
      }
      return;
    }
  }
  if (steady_clock::now() - last_sent_ >= opts_.keepalive && !opts_.keepalive_message.is_null())
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
