// GET /terminal?sandboxID=&ticket=&cols=&rows=, upgraded to a WebSocket: a
// login shell on a PTY in the sandbox, for the web console. A browser's
// WebSocket carries no headers, so the ticket (POST /sandboxes/:id/terminal,
// for the sandbox's org only, valid a minute) stands in for the access token.
//
// Client → server: binary messages are keystrokes; a text message is
//   {"resize": {"cols": C, "rows": R}}.
// Server → client: binary messages are the PTY's output; then a text message
//   {"exit": {"exitCode", "status"}} or {"error": "..."}, and a close frame.
//
// The shell runs through envd's own process machinery (the agent stream of
// process.Process/Start with a PTY, SendInput, Update) and is hung up
// (SIGHUP, which bash passes on to its jobs; SIGKILL a second later) when
// the socket closes. A ticket opens one terminal, as the sandbox's default
// user (Authorization does not pick another).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/ascii.hpp"
#include "core/bounded_json.hpp"
#include "core/crypto.hpp"
#include "http/envd.hpp"
#include "http/envd_call.hpp"
#include "http/envd_stream.hpp"
#include "http/websocket.hpp"
#include "runtime/agent_protocol.hpp"
#include "runtime/base64.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace ws = websocket;
using namespace std::chrono;

namespace {

// A client message (keystrokes or a paste): more is refused with 1009.
constexpr size_t max_client_message = 64 * 1024;
// A text (control) message: {"resize":{"cols":C,"rows":R}} and no more.
constexpr size_t max_control_message = 256;
// Without a byte either way for this long, the terminal closes.
constexpr auto terminal_idle = minutes(30);
// A client that reads nothing for this long is cut (its output is not queued).
constexpr auto write_wait = seconds(30);
// How long a shell has after SIGHUP (which it passes on to its jobs) before
// SIGKILL.
constexpr auto hangup_grace = milliseconds(1000);

result<int> size_param(const envd_call& call, const char* name, int fallback) {
  auto v = call.param(name);
  if (!v)
    return fallback;
  if (v->empty() || v->size() > 4 || v->find_first_not_of("0123456789") != std::string::npos)
    return bad_request(std::string{name} + " must be an integer from 1 to 1000");
  int n = std::stoi(*v);
  if (n < 1 || n > 1000)
    return bad_request(std::string{name} + " must be an integer from 1 to 1000");
  return n;
}

// One terminal on its connection. Two threads, each blocking on one side:
// this one (the connection's) relays the shell's output to the client; a
// reader thread takes the client's messages to the shell. Writes to the
// client are serialized; whichever side ends first ends the other (the
// reader by flagging client_done_, which this side sees within half a second
// and then hangs the shell up; this side by shutting the socket down).
class terminal_session {
public:
  terminal_session(envd_call call, int cols, int rows)
    : call_(std::move(call)), cols_(cols), rows_(rows) {}

  void run(int client, const std::string& from_client) {
    client_ = client;
    // The reader thread notices a client that goes away; the relay must not
    // (it would end the stream at once, before the shell is hung up).
    call_.client_fd = -1;
    if (!call_.ctx->tickets->open()) {
      send(ws::close_frame(1013, "too many terminals are open on this server: try again later"));
      ::shutdown(client_, SHUT_RDWR);
      return;
    }
    try {
      if (start())
        serve(from_client);
    } catch (const std::exception& e) {
      spdlog::warn("envd terminal {}: {}", call_.sandbox_id, e.what());
    }
    hang_up();
    // Wakes the reader (blocked in poll) and ends the connection.
    ::shutdown(client_, SHUT_RDWR);
    if (reader_.joinable())
      reader_.join();
    call_.ctx->tickets->close();
  }

private:
  bool start() {
    json req = {{"op", "exec"},
                {"cmd", "/bin/bash"},
                {"args", {"-i", "-l"}},
                {"env", {{"TERM", "xterm-256color"}, {"LANG", "C.UTF-8"}}},
                {"user", call_.user},
                {"cwd", call_.workdir.empty() ? "~" : call_.workdir},
                {"pty", {{"cols", cols_}, {"rows", rows_}}}};
    connect_relay::options opts;
    opts.translate = [this](const json& f) -> std::optional<json> {
      frames_.push_back(f);
      return std::nullopt;
    };
    opts.keepalive = hours(24 * 3650); // no keepalive: a WebSocket needs none here
    auto relay = connect_relay::open(call_, req, std::move(opts));
    if (!relay) {
      send_text(json{{"error", relay.error().message}});
      send(ws::close_frame(1011, "no terminal"));
      return false;
    }
    relay_ = std::move(*relay);
    return flush_frames(); // the first frame is the shell's start: its pid
  }

  void serve(const std::string& from_client) {
    last_active_ = steady_clock::now().time_since_epoch().count();
    try {
      reader_ = std::thread([this, from_client] { read_client(from_client); });
    } catch (const std::system_error& e) {
      send_text(json{{"error", std::string{"no thread for the terminal: "} + e.what()}});
      send(ws::close_frame(1011, "server busy"));
      return;
    }
    for (;;) {
      bool alive = relay_->wait(milliseconds(500));
      if (!flush_frames())
        return;
      if (!alive) {
        send_text(json{{"error", "the terminal's process stream ended"}});
        send(ws::close_frame(1011, "stream ended"));
        return;
      }
      if (client_done_)
        return; // the client left or broke the protocol: run() hangs up
      auto idle_since = steady_clock::time_point(steady_clock::duration(last_active_.load()));
      if (steady_clock::now() - idle_since > terminal_idle) {
        send(ws::close_frame(1000, "idle for 30 minutes"));
        return;
      }
    }
  }

  // The agent's frames so far, to the client; false once it should end.
  bool flush_frames() {
    while (!frames_.empty()) {
      json f = std::move(frames_.front());
      frames_.pop_front();
      auto type = f.value("type", "");
      if (type == "start") {
        pid_ = f.value("pid", 0);
      } else if (type == "pty" || type == "stdout" || type == "stderr") {
        auto bytes = base64::decode(f.value("data", ""));
        if (!bytes) {
          send_text(json{{"error", "the sandbox sent output that is not base64"}});
          send(ws::close_frame(1011, "bad output"));
          return false;
        }
        if (!bytes->empty() && !send(ws::frame(ws::opcode::binary, *bytes)))
          return false;
        touch();
      } else if (type == "end") {
        pid_ = 0; // nothing left to kill
        send_text(json{{"exit", {{"exitCode", f.value("exit_code", -1)},
                                 {"status", f.value("status", "")}}}});
        send(ws::close_frame(1000, "exited"));
        return false;
      }
    }
    return true;
  }

  // The reader thread: the client's messages until it closes or errs.
  void read_client(std::string pending) {
    for (;;) {
      if (!pending.empty()) {
        touch();
        if (!on_client_bytes(pending))
          break;
        pending.clear();
      }
      pollfd p{client_, POLLIN, 0};
      int ready = ::poll(&p, 1, 1000);
      if (ready < 0 && errno != EINTR)
        break;
      if (ready <= 0)
        continue;
      char buf[16 * 1024];
      auto n = ::read(client_, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (n <= 0)
        break; // the client went away, or run() shut the socket down
      pending.assign(buf, static_cast<size_t>(n));
    }
    client_done_ = true;
  }

  // Bytes from the client; false once it should end (a close, a violation).
  // Keystrokes that came together go to the shell as one input, and of
  // several resizes only the last counts.
  bool on_client_bytes(std::string_view bytes) {
    auto messages = reader_state_.feed(bytes);
    if (!messages) {
      send(ws::close_frame(static_cast<uint16_t>(messages.error().status), messages.error().message));
      return false;
    }
    std::string input;
    std::optional<std::pair<int64_t, int64_t>> size;
    bool closing = false;
    for (auto& m : *messages) {
      if (m.op == ws::opcode::binary) {
        input += m.payload;
      } else if (m.op == ws::opcode::text) {
        auto s = parse_resize(m.payload);
        if (!s) {
          send(ws::close_frame(1003, s.error().message));
          return false;
        }
        size = *s;
      } else if (m.op == ws::opcode::ping) {
        send(ws::frame(ws::opcode::pong, m.payload));
      } else if (m.op == ws::opcode::close) {
        closing = true;
        break;
      }
    }
    if (!input.empty() && !agent_op({{"op", "input"}, {"data", base64::encode(input)}}))
      return false;
    if (size && !agent_op({{"op", "resize"}, {"cols", size->first}, {"rows", size->second}}))
      return false;
    if (closing) {
      send(ws::close_frame(1000, ""));
      return false;
    }
    return true;
  }

  static result<std::pair<int64_t, int64_t>> parse_resize(const std::string& text) {
    const auto* usage = "a text message must be {\"resize\":{\"cols\":1..1000,\"rows\":1..1000}}";
    if (text.size() > max_control_message)
      return failure{1003, usage};
    auto j = parse_json_bounded(text, {max_control_message, 2}, "control message");
    if (!j || !j->is_object())
      return failure{1003, usage};
    auto r = j->find("resize");
    if (r == j->end() || !r->is_object())
      return failure{1003, usage};
    auto c = r->find("cols"), w = r->find("rows");
    auto in_range = [](const json& v) {
      return v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= 1000;
    };
    if (c == r->end() || w == r->end() || !in_range(*c) || !in_range(*w))
      return failure{1003, usage};
    return std::pair{c->get<int64_t>(), w->get<int64_t>()};
  }

  // An op on the shell; a failure is told to the client and ends the session.
  bool agent_op(json req) {
    int pid = pid_;
    if (pid == 0)
      return true; // already ended
    req["pid"] = pid;
    auto r = agent_call(call_, req);
    if (!r) {
      send_text(json{{"error", r.error().message}});
      send(ws::close_frame(1011, "the sandbox refused"));
      return false;
    }
    return true;
  }

  void signal(const char* name) {
    int pid = pid_;
    if (pid == 0)
      return;
    auto r = agent_call(call_, {{"op", "signal"}, {"pid", pid}, {"signal", name}});
    if (!r)
      spdlog::debug("envd terminal {}: SIG{} to pid {}: {}", call_.sandbox_id, name, pid, r.error().message);
  }

  // The shell does not outlive its terminal: SIGHUP (bash passes it on to
  // its jobs), then SIGKILL if it has not ended within the grace.
  void hang_up() {
    if (pid_ == 0 || !relay_)
      return;
    signal("HUP");
    auto until = steady_clock::now() + hangup_grace;
    while (pid_ != 0 && steady_clock::now() < until) {
      bool alive = relay_->wait(milliseconds(100));
      for (auto& f : frames_) // the client is gone or done: only the end matters
        if (f.value("type", "") == "end")
          pid_ = 0;
      frames_.clear();
      if (!alive)
        break;
    }
    if (pid_ != 0)
      signal("KILL");
  }

  void touch() { last_active_ = steady_clock::now().time_since_epoch().count(); }

  bool send_text(const json& j) {
    return send(ws::frame(ws::opcode::text, j.dump(-1, ' ', false, json::error_handler_t::replace)));
  }

  bool send(const std::string& bytes) {
    std::lock_guard<std::mutex> lock{send_mtx_};
    auto dl = agent::clock::now() + write_wait;
    return agent::write_all(client_, bytes.data(), bytes.size(), dl) == agent::io_status::ok;
  }

  envd_call call_;
  int cols_, rows_;
  int client_ = -1;
  std::atomic<int> pid_{0};
  std::atomic<bool> client_done_{false};
  std::atomic<steady_clock::rep> last_active_{0};
  std::unique_ptr<connect_relay> relay_;
  std::deque<json> frames_;     // this thread's only
  ws::reader reader_state_{max_client_message}; // the reader thread's only
  std::thread reader_;
  std::mutex send_mtx_;
};

} // namespace

bool is_terminal_path(const std::string& path) {
  return path == "/terminal";
}

result<int64_t> check_terminal_ticket(const envd_call& call) {
  auto ticket = call.param("ticket").value_or("");
  if (ticket.empty())
    return failure{401, "missing ticket (POST /sandboxes/:id/terminal gives one)"};
  // <expiry>.<32 hex nonce>.<hmac>
  auto first = ticket.find('.');
  auto second = first == std::string::npos ? first : ticket.find('.', first + 1);
  if (second == std::string::npos)
    return failure{401, "invalid ticket"};
  auto expiry = ticket.substr(0, first);
  auto nonce = ticket.substr(first + 1, second - first - 1);
  if (expiry.empty() || expiry.size() > 12 || expiry.find_first_not_of("0123456789") != std::string::npos
      || nonce.size() != 32 || nonce.find_first_not_of("0123456789abcdef") != std::string::npos)
    return failure{401, "invalid ticket"};
  auto expected = terminal_ticket(call.ctx->db->secret(), call.sandbox_id, std::stoll(expiry), nonce);
  if (!secure_equals(ticket, expected))
    return failure{401, "invalid ticket"};
  auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  if (std::stoll(expiry) < now)
    return failure{401, "the ticket has expired (they last a minute)"};
  return static_cast<int64_t>(std::stoll(expiry));
}

envd_reply terminal_request(envd_call& call) {
  if (call.method != "GET")
    return envd_reply::rest_error({405, "GET /terminal with a WebSocket upgrade"});
  auto upgrade = ascii_lower(call.header("upgrade"));
  auto key = call.header("sec-websocket-key");
  if (upgrade != "websocket" || !ws::valid_client_key(key))
    return envd_reply::rest_error(bad_request("GET /terminal is a WebSocket: Upgrade: websocket and a Sec-WebSocket-Key are required"));
  if (call.header("sec-websocket-version") != "13")
    return envd_reply::rest_error(bad_request("Sec-WebSocket-Version must be 13"));
  auto cols = size_param(call, "cols", 80);
  auto rows = size_param(call, "rows", 24);
  if (!cols)
    return envd_reply::rest_error(cols.error());
  if (!rows)
    return envd_reply::rest_error(rows.error());
  // Last: a ticket is used up by the terminal it opens, not by a refusal.
  auto expiry = check_terminal_ticket(call);
  if (!expiry)
    return envd_reply::rest_error(expiry.error());
  auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  switch (call.ctx->tickets->consume(call.param("ticket").value_or(""), *expiry, now)) {
  case terminal_tickets::verdict::used:
    return envd_reply::rest_error({401, "this ticket has opened its terminal already: ask for another"});
  case terminal_tickets::verdict::full:
    return envd_reply::rest_error({503, "too many terminals were opened in the last minute"});
  case terminal_tickets::verdict::fresh:
    break;
  }
  envd_reply r;
  r.status = 101;
  r.headers = {{"Upgrade", "websocket"}, {"Sec-WebSocket-Accept", ws::accept_key(key)}};
  auto session = std::make_shared<terminal_session>(call, *cols, *rows);
  r.upgraded = [session](int client, const std::string& from_client) {
    session->run(client, from_client);
  };
  return r;
}

} // namespace sandboxd::http
