// The port proxy of the envd listener: a request for port P of a sandbox
// (E2b-Sandbox-Port: P, or Host: P-<id>.<domain>) is passed to P inside the
// sandbox, through the agent (tcp op), one upstream connection per request.
// HTTP/1.1 both ways with bodies streamed as they come (Content-Length,
// chunked, or until the upstream closes), and WebSocket (or any) upgrades
// relayed as raw bytes once the sandbox answered 101.
#include "http/envd_ports.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/ascii.hpp"
#include "core/fd_closer.hpp"
#include "runtime/agent_client.hpp"
#include "runtime/agent_protocol.hpp"
#include "runtime/byte_relay.hpp"

namespace sandboxd::http {

namespace {

constexpr int envd_port = 49983;
// The upstream's response head: at most this big, and due within this long
// after the request went out (long polls and slow first bytes included).
constexpr size_t max_response_head = 64 * 1024;
constexpr auto head_wait = std::chrono::minutes(5);
// Between two reads of a response body, or two writes of a request body.
constexpr auto body_idle = std::chrono::minutes(5);
// An upgraded connection (a WebSocket, a terminal) with no byte either way.
constexpr auto upgraded_idle = std::chrono::minutes(30);

using agent::deadline;

deadline after(std::chrono::milliseconds d) { return agent::clock::now() + d; }

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 5 && s.find_first_not_of("0123456789") == std::string::npos;
}

// Hop-by-hop headers and our own routing headers: never passed on.
bool dropped_header(const std::string& name) {
  static const char* names[] = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                                "transfer-encoding", "upgrade", "content-length", "expect",
                                "e2b-sandbox-id", "e2b-sandbox-port", "e2b-traffic-access-token"};
  return std::any_of(std::begin(names), std::end(names), [&](const char* n) { return name == n; });
}

// Reads what is there (at least a byte) by the deadline: count, 0 at end of
// stream, -1 on an error or timeout.
ssize_t read_some(int fd, char* buf, size_t max, const deadline& dl) {
  for (;;) {
    ssize_t n = ::recv(fd, buf, max, MSG_DONTWAIT);
    if (n >= 0)
      return n;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -1;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, agent::poll_timeout_ms(dl));
    if (r == 0)
      return -1;
    if (r < 0 && errno != EINTR)
      return -1;
  }
}

struct response_head {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers; // names lowercased
  std::string find(const std::string& name) const {
    for (auto& [k, v] : headers)
      if (k == name)
        return v;
    return {};
  }
};

// "HTTP/1.1 200 OK\r\nName: value\r\n..." (without the blank line).
std::optional<response_head> parse_head(const std::string& text) {
  response_head h;
  size_t eol = text.find("\r\n");
  auto line = text.substr(0, eol);
  if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12 || line[8] != ' ')
    return std::nullopt;
  auto code = line.substr(9, 3);
  if (code.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  h.status = std::stoi(code);
  size_t pos = eol == std::string::npos ? text.size() : eol + 2;
  while (pos < text.size()) {
    size_t end = text.find("\r\n", pos);
    if (end == std::string::npos)
      end = text.size();
    auto field = text.substr(pos, end - pos);
    auto colon = field.find(':');
    if (colon == std::string::npos || colon == 0)
      return std::nullopt;
    auto value = field.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t") + 1);
    h.headers.emplace_back(ascii_lower(field.substr(0, colon)), value);
    pos = end + 2;
  }
  return h;
}

// A response body read from the upstream as the client takes it.
class upstream_body : public body_source {
public:
  enum class framing { length, chunked, until_close };
  upstream_body(int fd, std::string already, framing f, uint64_t length)
    : fd_(fd), buf_(std::move(already)), framing_(f), left_(length) {}
  ~upstream_body() override { ::close(fd_); }

  ssize_t read(char* out, size_t max) override {
    switch (framing_) {
    case framing::length:
      if (left_ == 0)
        return 0;
      return take(out, static_cast<size_t>(std::min<uint64_t>(max, left_)), true);
    case framing::until_close:
      return take(out, max, false);
    case framing::chunked:
      return chunked(out, max);
    }
    return -1;
  }

private:
  // Up to max bytes of raw body: from what is buffered, else from the fd.
  ssize_t take(char* out, size_t max, bool counted) {
    if (buf_.empty() && !fill())
      return counted ? -1 : (eof_ ? 0 : -1);
    size_t n = std::min(max, buf_.size());
    std::memcpy(out, buf_.data(), n);
    buf_.erase(0, n);
    if (counted)
      left_ -= n;
    return static_cast<ssize_t>(n);
  }

  bool fill() {
    char tmp[64 * 1024];
    ssize_t n = read_some(fd_, tmp, sizeof tmp, after(body_idle));
    if (n <= 0) {
      eof_ = n == 0;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  // One CRLF-terminated line from the chunked framing, bounded.
  std::optional<std::string> line() {
    for (;;) {
      auto eol = buf_.find("\r\n");
      if (eol != std::string::npos) {
        auto l = buf_.substr(0, eol);
        buf_.erase(0, eol + 2);
        return l;
      }
      if (buf_.size() > 4096 || !fill())
        return std::nullopt;
    }
  }

  ssize_t chunked(char* out, size_t max) {
    if (done_)
      return 0;
    if (left_ == 0) {
      if (in_chunk_) { // the CRLF after a chunk's data
        if (!line())
          return -1;
        in_chunk_ = false;
      }
      auto size_line = line();
      if (!size_line)
        return -1;
      auto hex = size_line->substr(0, size_line->find(';'));
      if (hex.empty() || hex.size() > 15 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        return -1;
      left_ = std::stoull(hex, nullptr, 16);
      if (left_ == 0) { // trailers up to the blank line
        for (;;) {
          auto t = line();
          if (!t)
            return -1;
          if (t->empty())
            break;
        }
        done_ = true;
        return 0;
      }
      in_chunk_ = true;
    }
    return take(out, static_cast<size_t>(std::min<uint64_t>(max, left_)), true);
  }

  int fd_;
  std::string buf_;
  framing framing_;
  uint64_t left_;
  bool eof_ = false, in_chunk_ = false, done_ = false;
};

envd_reply closed_port(const envd_call& call, int port) {
  envd_reply r;
  r.status = 502;
  if (ascii_lower(call.header("user-agent")).find("mozilla") != std::string::npos) {
    r.content_type = "text/html; charset=utf-8";
    r.body = "<!DOCTYPE html><html><head><title>Closed Port Error</title></head><body>"
             "<h1>Closed Port Error</h1><p>The sandbox " + call.sandbox_id
             + " is running but there's no service running on port " + std::to_string(port)
             + ".</p></body></html>\n";
    return r;
  }
  r = envd_reply::json_body(502, {{"message", "The sandbox is running but port is not open"},
                                  {"sandboxId", call.sandbox_id},
                                  {"port", port},
                                  {"code", 502}});
  r.content_type = "application/json; charset=utf-8";
  return r;
}

envd_reply proxy_error(const envd_call& call, int port, const std::string& why) {
  auto r = envd_reply::json_body(502, {{"message", why}, {"sandboxId", call.sandbox_id},
                                       {"port", port}, {"code", 502}});
  r.content_type = "application/json; charset=utf-8";
  return r;
}

// One proxied request: the head went out on construction; feed() passes the
// body on; finish() reads the answer.
class port_request : public upload_sink {
public:
  port_request(const envd_call& call, int port, int fd, bool chunked, bool upgrade)
    : call_(call), port_(port), fd_(fd), chunked_(chunked), upgrade_(upgrade) {}
  ~port_request() override {
    if (fd_ >= 0)
      ::close(fd_);
  }

  status send(const std::string& bytes) {
    if (agent::write_all(fd_, bytes.data(), bytes.size(), after(body_idle)) != agent::io_status::ok)
      return bad_gateway("the sandbox's port " + std::to_string(port_) + " stopped reading the request");
    return success();
  }

  status feed(const char* data, size_t size) override {
    if (!chunked_)
      return send(std::string(data, size));
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", size);
    return send(size_line + std::string(data, size) + "\r\n");
  }

  envd_reply finish() override {
    if (chunked_)
      if (auto st = send("0\r\n\r\n"); !st)
        return proxy_error(call_, port_, st.error().message);
    // The head, and whatever of the body came with it.
    std::string got;
    size_t end = std::string::npos;
    auto dl = after(head_wait);
    while (end == std::string::npos) {
      if (got.size() > max_response_head)
        return proxy_error(call_, port_, "the response head from the sandbox is larger than 64 KiB");
      char tmp[16 * 1024];
      ssize_t n = read_some(fd_, tmp, sizeof tmp, dl);
      if (n <= 0)
        return proxy_error(call_, port_, n == 0 ? "the sandbox closed the connection without answering"
                                                : "no answer from the sandbox's port in time");
      got.append(tmp, static_cast<size_t>(n));
      end = got.find("\r\n\r\n");
    }
    auto head = parse_head(got.substr(0, end));
    if (!head)
      return proxy_error(call_, port_, "the sandbox answered something that is not HTTP/1.1");
    std::string rest = got.substr(end + 4);
    envd_reply r;
    r.status = head->status;
    r.content_type = head->find("content-type");
    for (auto& [k, v] : head->headers)
      if (!dropped_header(k) && k != "content-type")
        r.headers.emplace_back(k, v);
    if (head->status == 101 && upgrade_) {
      r.headers.emplace_back("upgrade", head->find("upgrade"));
      int fd = fd_;
      fd_ = -1;
      r.upgraded = [fd, rest](int client, const std::string& from_client) {
        fd_closer up{fd};
        // Bytes each side sent past its head go first, then everything else.
        if ((rest.empty() || agent::write_all(client, rest.data(), rest.size(), after(body_idle)) == agent::io_status::ok)
            && (from_client.empty()
                || agent::write_all(fd, from_client.data(), from_client.size(), after(body_idle)) == agent::io_status::ok))
          relay_bytes(client, fd, upgraded_idle);
      };
      return r;
    }
    bool no_body = call_.method == "HEAD" || head->status == 204 || head->status == 304
                   || head->status / 100 == 1;
    auto length = head->find("content-length");
    if (no_body) {
      if (call_.method == "HEAD" && all_digits(length)) {
        r.stream = std::make_unique<upstream_body>(fd_, std::string{}, upstream_body::framing::length, 0);
        r.stream_size = std::stoull(length);
        fd_ = -1;
      }
      return r;
    }
    auto framing = upstream_body::framing::until_close;
    uint64_t size = 0;
    if (ascii_lower(head->find("transfer-encoding")).find("chunked") != std::string::npos) {
      framing = upstream_body::framing::chunked;
    } else if (!length.empty() && length.size() <= 18
               && length.find_first_not_of("0123456789") == std::string::npos) {
      framing = upstream_body::framing::length;
      size = std::stoull(length);
      r.stream_size = size;
    }
    r.stream = std::make_unique<upstream_body>(fd_, std::move(rest), framing, size);
    fd_ = -1;
    return r;
  }

private:
  envd_call call_;
  int port_;
  int fd_;
  bool chunked_;
  bool upgrade_;
};

} // namespace

std::optional<int> target_port(const envd_call& call) {
  auto given = call.header("e2b-sandbox-port");
  if (given.empty()) {
    auto host = call.header("host");
    auto dash = host.find('-');
    if (dash != std::string::npos && host.find('.') > dash)
      given = host.substr(0, dash);
  }
  if (!all_digits(given))
    return std::nullopt;
  int port = std::stoi(given);
  if (port < 1 || port > 65535 || port == envd_port)
    return std::nullopt;
  return port;
}

result<std::unique_ptr<upload_sink>> open_port_request(envd_call& call, int port,
                                                       const std::string& target,
                                                       envd_reply& refused) {
  auto fd = agent::open_port(call.socket, port, std::chrono::seconds(10));
  if (!fd) {
    refused = fd.error().status == 404 ? closed_port(call, port)
                                       : proxy_error(call, port, fd.error().message);
    return fd.error();
  }
  fd_closer guard{*fd};
  bool upgrade = ascii_lower(call.header("connection")).find("upgrade") != std::string::npos
                 && !call.header("upgrade").empty();
  auto length = call.header("content-length");
  bool chunked = length.empty()
                 && ascii_lower(call.header("transfer-encoding")).find("chunked") != std::string::npos;
  std::string head = call.method + " " + target + " HTTP/1.1\r\n";
  for (auto& [k, v] : call.headers)
    if (!dropped_header(k))
      head += k + ": " + v + "\r\n";
  if (!length.empty())
    head += "content-length: " + length + "\r\n";
  if (chunked)
    head += "transfer-encoding: chunked\r\n";
  head += upgrade ? "connection: upgrade\r\nupgrade: " + call.header("upgrade") + "\r\n"
                  : std::string{"connection: close\r\n"};
  head += "\r\n";
  auto req = std::make_unique<port_request>(call, port, guard.release(), chunked, upgrade);
  if (auto st = req->send(head); !st) {
    refused = proxy_error(call, port, st.error().message);
    return st.error();
  }
  return std::unique_ptr<upload_sink>{std::move(req)};
}

} // namespace sandboxd::http
