#include "runtime/agent_protocol.hpp"

#include <cerrno>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/bounded_json.hpp"

namespace sandboxd::agent {

int http_status_for_code(const std::string& c) {
  if (c == code::invalid_argument) return 400;
  if (c == code::not_found) return 404;
  if (c == code::already_exists) return 409;
  if (c == code::permission_denied) return 403;
  if (c == code::too_large) return 400;
  if (c == code::failed_precondition) return 409;
  return 502;
}

json error_frame(const std::string& c, const std::string& message) {
  return json{{"type", "error"}, {"code", c}, {"message", message}};
}

bool is_terminal(const json& frame) {
  if (!frame.is_object()) return false;
  auto it = frame.find("type");
  if (it == frame.end() || !it->is_string()) return false;
  const auto& t = it->get_ref<const std::string&>();
  return t == "result" || t == "end" || t == "error";
}

std::string encode_frame(const json& payload) {
  std::string body = payload.dump(-1, ' ', false, json::error_handler_t::replace);
  uint32_t n = static_cast<uint32_t>(body.size());
  std::string out;
  out.reserve(body.size() + 4);
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out += body;
  return out;
}

const char* to_string(io_status s) {
  switch (s) {
    case io_status::ok: return "ok";
    case io_status::eof: return "connection closed";
    case io_status::timeout: return "timed out";
    case io_status::error: return "I/O error";
    case io_status::too_large: return "frame too large";
    case io_status::malformed: return "malformed frame";
  }
  return "unknown";
}

int poll_timeout_ms(const deadline& dl) {
  if (!dl) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*dl - clock::now()).count();
  if (left <= 0) return 0;
  if (left > 1000 * 1000 * 1000) return 1000 * 1000 * 1000;
  // Round up so that we do not spin just before the deadline.
  return static_cast<int>(left) + 1;
}

namespace {

// Waits until fd is ready for `events`; returns ok, timeout or error.
io_status wait_fd(int fd, short events, const deadline& dl) {
  for (;;) {
    pollfd p{fd, events, 0};
    int t = poll_timeout_ms(dl);
    int r = ::poll(&p, 1, t);
    if (r < 0) {
      if (errno == EINTR) continue;
      return io_status::error;
    }
    if (r == 0) {
      if (dl && clock::now() >= *dl) return io_status::timeout;
      continue;
    }
    return io_status::ok;  // readiness, hangup or error: the next syscall tells
  }
}

// Reads exactly `size` bytes. `got_any` reports whether any byte arrived
// (to tell a clean EOF between frames from a truncated frame).
io_status read_exact(int fd, char* buf, size_t size, const deadline& dl, bool* got_any) {
  size_t done = 0;
  while (done < size) {
    io_status w = wait_fd(fd, POLLIN, dl);
    if (w != io_status::ok) return w;
    ssize_t n = ::recv(fd, buf + done, size - done, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ENOTSOCK) {
        n = ::read(fd, buf + done, size - done);
        if (n < 0) {
          if (errno == EINTR || errno == EAGAIN) continue;
          return io_status::error;
        }
      } else {
        return io_status::error;
      }
    }
    if (n == 0) return io_status::eof;
    done += static_cast<size_t>(n);
    if (got_any) *got_any = true;
  }
  return io_status::ok;
}

}  // namespace

io_status write_all(int fd, const char* data, size_t size, deadline dl) {
  size_t done = 0;
  while (done < size) {
    io_status w = wait_fd(fd, POLLOUT, dl);
    if (w != io_status::ok) return w;
    ssize_t n = ::send(fd, data + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ENOTSOCK) {
        n = ::write(fd, data + done, size - done);
        if (n < 0) {
          if (errno == EINTR || errno == EAGAIN) continue;
          return io_status::error;
        }
      } else {
        return io_status::error;
      }
    }
    done += static_cast<size_t>(n);
  }
  return io_status::ok;
}

io_status write_frame(int fd, const json& payload, deadline dl) {
  std::string bytes = encode_frame(payload);
  return write_all(fd, bytes.data(), bytes.size(), dl);
}

io_status read_frame(int fd, json& out, deadline dl, std::string* detail) {
  unsigned char hdr[4];
  bool got_any = false;
  io_status s = read_exact(fd, reinterpret_cast<char*>(hdr), 4, dl, &got_any);
  if (s == io_status::eof && got_any) s = io_status::error;
  if (s != io_status::ok) {
    if (detail) *detail = to_string(s);
    return s;
  }
  uint32_t n = (uint32_t(hdr[0]) << 24) | (uint32_t(hdr[1]) << 16) | (uint32_t(hdr[2]) << 8) | uint32_t(hdr[3]);
  if (n > kMaxFrameBytes) {
    if (detail) *detail = "frame of " + std::to_string(n) + " bytes exceeds the limit of " + std::to_string(kMaxFrameBytes);
    return io_status::too_large;
  }
  std::string body(n, '\0');
  s = read_exact(fd, body.data(), n, dl, nullptr);
  if (s == io_status::eof) s = io_status::error;
  if (s != io_status::ok) {
    if (detail) *detail = to_string(s);
    return s;
  }
  // Nesting is checked before parsing: dumping or copying a deep value recurses.
  auto parsed = parse_json_bounded(body, {kMaxFrameBytes, kMaxFrameDepth}, "frame payload");
  if (!parsed || !parsed->is_object()) {
    if (detail) *detail = parsed ? "frame payload is not a JSON object" : parsed.error().message;
    return io_status::malformed;
  }
  out = std::move(*parsed);
  return io_status::ok;
}

}  // namespace sandboxd::agent
