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
// process.Process/Start with a PTY, SendInput, Update) and is killed when
// the socket closes: a terminal leaves no shell behind.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>

#include <spdlog/spdlog.h>

#include "core/crypto.hpp"
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
// Without a byte either way for this long, the terminal closes.
constexpr auto terminal_idle = minutes(30);
// A client that reads nothing for this long is cut (its output is not queued).
constexpr auto write_wait = seconds(30);
// How long each side is waited on before the other is looked at: the added
// latency of a keystroke or of output, at most.
constexpr auto turn = milliseconds(10);

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

class terminal_session {
public:
  terminal_session(envd_call call, int cols, int rows)
    : call_(std::move(call)), cols_(cols), rows_(rows) {}

  void run(int client, const std::string& from_client) {
    client_ = client;
    call_.client_fd = client;
    if (!start())
      return;
    last_active_ = steady_clock::now();
    if (!from_client.empty() && !on_client_bytes(from_client))
      return finish();
    for (;;) {
      bool alive = relay_->wait(turn);
      if (!flush_frames())
        return finish();
      if (!alive) {
        send_text(json{{"error", "the terminal's process stream ended"}});
        send(ws::close_frame(1011, "stream ended"));
        return finish();
      }
      pollfd p{client_, POLLIN, 0};
      int ready = ::poll(&p, 1, 0);
      if (ready > 0) {
        char buf[16 * 1024];
        auto n = ::read(client_, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
          continue;
        if (n <= 0)
          return finish(); // the client went away
        last_active_ = steady_clock::now();
        if (!on_client_bytes({buf, static_cast<size_t>(n)}))
          return finish();
      }
      if (steady_clock::now() - last_active_ > terminal_idle) {
        send(ws::close_frame(1000, "idle for 30 minutes"));
        return finish();
      }
    }
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
    return flush_frames();
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
        if (bytes && !bytes->empty() && !send(ws::frame(ws::opcode::binary, *bytes)))
          return false;
        last_active_ = steady_clock::now();
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

  // Bytes from the client; false once it should end (a close, a violation).
  bool on_client_bytes(std::string_view bytes) {
    auto messages = reader_.feed(bytes);
    if (!messages) {
      send(ws::close_frame(static_cast<uint16_t>(messages.error().status), messages.error().message));
      return false;
    }
    for (auto& m : *messages) {
      switch (m.op) {
      case ws::opcode::binary:
        if (!agent_op({{"op", "input"}, {"data", base64::encode(m.payload)}}))
          return false;
        break;
      case ws::opcode::text:
        if (!on_control(m.payload))
          return false;
        break;
      case ws::opcode::ping:
        send(ws::frame(ws::opcode::pong, m.payload));
        break;
      case ws::opcode::close:
        send(ws::close_frame(1000, ""));
        return false;
      default:
        break;
      }
    }
    return true;
  }

  bool on_control(const std::string& text) {
    auto j = json::parse(text, nullptr, false);
    auto size = j.is_object() ? j.value("resize", json()) : json();
    auto in_range = [](const json& v) {
      return v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= 1000;
    };
    if (!size.is_object() || !in_range(size.value("cols", json())) || !in_range(size.value("rows", json()))) {
      send(ws::close_frame(1003, "a text message must be {\"resize\":{\"cols\":1..1000,\"rows\":1..1000}}"));
      return false;
    }
    return agent_op({{"op", "resize"}, {"cols", size["cols"]}, {"rows", size["rows"]}});
  }

  // An op on the shell; a failure is told to the client and ends the session.
  bool agent_op(json req) {
    if (pid_ == 0)
      return true; // not started yet, or already ended
    req["pid"] = pid_;
    auto r = agent_call(call_, req);
    if (!r) {
      send_text(json{{"error", r.error().message}});
      send(ws::close_frame(1011, "the sandbox refused"));
      return false;
    }
    return true;
  }

  bool send_text(const json& j) {
    return send(ws::frame(ws::opcode::text, j.dump(-1, ' ', false, json::error_handler_t::replace)));
  }

  bool send(const std::string& bytes) {
    auto dl = agent::clock::now() + write_wait;
    return agent::write_all(client_, bytes.data(), bytes.size(), dl) == agent::io_status::ok;
  }

  // The shell does not outlive its terminal.
  void finish() {
    if (pid_ != 0) {
      auto r = agent_call(call_, {{"op", "signal"}, {"pid", pid_}, {"signal", "SIGKILL"}});
      if (!r)
        spdlog::debug("envd terminal {}: killing pid {}: {}", call_.sandbox_id, pid_, r.error().message);
    }
  }

  envd_call call_;
  int cols_, rows_;
  int client_ = -1;
  int pid_ = 0;
  std::unique_ptr<connect_relay> relay_;
  std::deque<json> frames_;
  ws::reader reader_{max_client_message};
  steady_clock::time_point last_active_;
};

} // namespace

bool is_terminal_path(const std::string& path) {
  return path == "/terminal";
}

status check_terminal_ticket(const envd_call& call) {
  auto ticket = call.param("ticket").value_or("");
  auto dot = ticket.find('.');
  if (ticket.empty())
    return failure{401, "missing ticket (POST /sandboxes/:id/terminal gives one)"};
  auto expiry = ticket.substr(0, dot);
  if (dot == std::string::npos || expiry.empty() || expiry.size() > 12
      || expiry.find_first_not_of("0123456789") != std::string::npos)
    return failure{401, "invalid ticket"};
  auto expected = terminal_ticket(call.ctx->db->secret(), call.sandbox_id, std::stoll(expiry));
  if (!secure_equals(ticket, expected))
    return failure{401, "invalid ticket"};
  auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  if (std::stoll(expiry) < now)
    return failure{401, "the ticket has expired (they last a minute)"};
  return success();
}

envd_reply terminal_request(envd_call& call) {
  if (call.method != "GET")
    return envd_reply::rest_error({405, "GET /terminal with a WebSocket upgrade"});
  auto upgrade = call.header("upgrade");
  std::transform(upgrade.begin(), upgrade.end(), upgrade.begin(), ::tolower);
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
