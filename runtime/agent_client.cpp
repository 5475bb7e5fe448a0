#include "runtime/agent_client.hpp"

#include <cerrno>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/fd_closer.hpp"
#include "runtime/agent_answers.hpp"
#include "runtime/agent_protocol.hpp"
#include "runtime/base64.hpp"

namespace sandboxd::agent {
namespace {

constexpr size_t kUploadPiece = 4u * 1024 * 1024;  // raw bytes per data frame

failure unreachable(const std::string& why) { return bad_gateway("sandbox agent unreachable: " + why); }
failure timed_out() { return failure{504, "timed out waiting for sandbox agent"}; }

failure io_failure(io_status s, const std::string& detail) {
  if (s == io_status::timeout) return timed_out();
  auto why = detail.empty() ? std::string(to_string(s)) : detail;
  if (s == io_status::too_large || s == io_status::malformed) return malformed_answer(why);
  return unreachable(why);
}

// The op a request names ("" when it names none: the agent refuses it).
std::string op_of(const json& request) {
  auto it = request.find("op");
  return it != request.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool is_error(const json& frame) { return frame["type"] == "error"; }

// Connects a non-blocking unix stream socket; returns fd or a failure.
// The socket is opened first without following links and connected through
// its fd: were it ever in a directory a sandbox writes (gVisor's agent binds
// its own), a link planted there to another socket is refused, not followed.
result<int> connect_agent(const std::string& path, const deadline& dl) {
  if (path.empty()) return unreachable("invalid socket path");
  fd_closer node{::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC)};
  struct stat st;
  if (node.get() < 0) return unreachable("connect " + path + ": " + std::strerror(errno));
  if (::fstat(node.get(), &st) != 0 || !S_ISSOCK(st.st_mode))
    return unreachable("connect " + path + ": not a socket");
  auto via = "/proc/self/fd/" + std::to_string(node.get());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, via.data(), via.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return unreachable(std::string("socket: ") + std::strerror(errno));
  for (;;) {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) break;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN && dl && clock::now() < *dl) {
      // Listen backlog full: unix sockets want the connect retried.
      ::poll(nullptr, 0, 10);
      continue;
    }
    ::close(fd);
    if (e == EAGAIN) return timed_out();
    return unreachable("connect " + path + ": " + std::strerror(e));
  }
  return fd;
}

deadline deadline_after(std::chrono::milliseconds timeout) { return clock::now() + timeout; }

// Reads frames answering `op` until the terminal one, forwarding each
// (checked) to on_frame.
status read_until_terminal(int fd, const deadline& dl, const std::string& op,
                           const std::function<bool(const json&)>& on_frame) {
  for (;;) {
    json frame;
    std::string detail;
    io_status s = read_frame(fd, frame, dl, &detail);
    if (s == io_status::eof) return unreachable("connection closed before the response was complete");
    if (s != io_status::ok) return io_failure(s, detail);
    if (auto ok = check_answer(op, frame); !ok) return ok.error();
    bool terminal = is_terminal(frame);
    bool keep = on_frame(frame);
    if (terminal) {
      if (is_error(frame)) return failure_from_error_frame(frame);
      return success();
    }
    if (!keep) return success();
  }
}

}  // namespace

failure failure_from_error_frame(const json& frame) {
  auto field = [&](const char* name) -> std::string {
    auto it = frame.is_object() ? frame.find(name) : frame.end();
    return frame.is_object() && it != frame.end() && it->is_string() ? it->get<std::string>() : "";
  };
  std::string c = field("code"), m = field("message");
  if (c.empty()) c = "internal";
  if (m.empty()) m = "agent error: " + c;
  return failure{http_status_for_code(c), m};
}

status stream(const std::string& socket_path, const json& request, const std::function<bool(const json&)>& on_frame,
              std::chrono::milliseconds timeout) {
  deadline dl = deadline_after(timeout);
  auto fd = connect_agent(socket_path, dl);
  if (!fd) return fd.error();
  fd_closer guard(*fd);
  io_status s = write_frame(guard.get(), request, dl);
  if (s != io_status::ok) return unreachable(std::string("send request: ") + to_string(s));
  return read_until_terminal(guard.get(), dl, op_of(request), on_frame);
}

result<int> open_port(const std::string& socket_path, int port, std::chrono::milliseconds timeout) {
  deadline dl = deadline_after(timeout);
  auto fd = connect_agent(socket_path, dl);
  if (!fd) return fd.error();
  fd_closer guard(*fd);
  json request{{"op", "tcp"}, {"port", port}};
  if (io_status s = write_frame(guard.get(), request, dl); s != io_status::ok)
    return unreachable(std::string("send request: ") + to_string(s));
  // Exactly one frame is read: what follows it is the port's bytes.
  json answer;
  std::string detail;
  if (io_status s = read_frame(guard.get(), answer, dl, &detail); s != io_status::ok)
    return s == io_status::timeout ? failure{504, "the agent did not answer in time"}
                                   : unreachable("answer to tcp: " + detail);
  auto type = answer.find("type");
  std::string kind = type != answer.end() && type->is_string() ? type->get<std::string>() : "";
  if (kind == "error") return failure_from_error_frame(answer);
  if (kind != "result") return unreachable("answer to tcp is not a result");
  return guard.release();
}

status wait_for_port(const std::string& socket_path, int port, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto fd = open_port(socket_path, port, std::chrono::seconds(2));
    if (fd) {
      ::close(*fd);
      return success();
    }
    if (fd.error().status != 404)
      return fd.error();
    if (std::chrono::steady_clock::now() >= end)
      return failure{504, "nothing listens on port " + std::to_string(port) + " inside after "
                            + std::to_string(timeout.count()) + " ms"};
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

result<json> call(const std::string& socket_path, const json& request, std::chrono::milliseconds timeout) {
  json terminal;
  status st = stream(
      socket_path, request,
      [&](const json& frame) {
        if (is_terminal(frame)) terminal = frame;
        return true;
      },
      timeout);
  if (!st) return st.error();
  return terminal;
}

result<exec_outcome> run(const std::string& socket_path, const json& exec_request, std::chrono::milliseconds timeout,
                         size_t max_output) {
  json req = exec_request;
  req["op"] = "exec";
  exec_outcome out;
  std::optional<failure> bad;
  bool ended = false;
  // Frames have been checked (agent_answers): fields have their types.
  status st = stream(
      socket_path, req,
      [&](const json& frame) {
        const auto& type = frame["type"].get_ref<const std::string&>();
        if (type == "start") {
          out.pid = frame["pid"].get<int>();
        } else if (type == "stdout" || type == "stderr" || type == "pty") {
          bool err = type == "stderr";
          auto& kept = err ? out.stderr_data : out.stdout_data;
          auto& truncated = err ? out.stderr_truncated : out.stdout_truncated;
          if (truncated) return true;  // read and dropped: the process runs on
          auto bytes = base64::decode(frame["data"].get_ref<const std::string&>());
          if (!bytes) {
            bad = malformed_answer(type + " frame data is not base64");
            return false;
          }
          if (kept.size() + bytes->size() > max_output) {
            bytes->resize(max_output - kept.size());
            truncated = true;
          }
          kept += *bytes;
        } else if (type == "end") {
          ended = true;
          out.exit_code = frame["exit_code"].get<int>();
          out.exited = frame["exited"].get<bool>();
          out.timed_out = frame.value("timed_out", false);
          out.status = frame.value("status", "");
        }
        return true;
      },
      timeout);
  if (bad) return *bad;
  if (!st) return st.error();
  if (!ended) return malformed_answer("the process's output ended without an end frame");
  return out;
}

result<json> write_stream(const std::string& socket_path, const json& request,
                          const std::function<std::optional<std::string>()>& next_chunk,
                          std::chrono::milliseconds timeout) {
  deadline dl = deadline_after(timeout);
  auto fd = connect_agent(socket_path, dl);
  if (!fd) return fd.error();
  fd_closer guard(*fd);
  json req = request;
  req["op"] = "write_stream";

  json terminal;
  auto collect = [&](const json& frame) {
    if (is_terminal(frame)) terminal = frame;
    return true;
  };
  // If the agent answers early (an error while we are still uploading), read
  // its answer instead of pushing more data.
  auto agent_spoke = [&]() {
    pollfd p{guard.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  };
  auto finish = [&]() -> result<json> {
    status st = read_until_terminal(guard.get(), dl, "write_stream", collect);
    if (!st) return st.error();
    return terminal;
  };
  auto send_failed = [&](io_status s) -> result<json> {
    if (s == io_status::timeout) return timed_out();
    // The agent may have closed after reporting an error: surface that.
    return finish();
  };

  io_status s = write_frame(guard.get(), req, dl);
  if (s != io_status::ok) return send_failed(s);
  for (;;) {
    if (agent_spoke()) return finish();
    std::optional<std::string> chunk = next_chunk();
    if (!chunk) break;
    for (size_t off = 0; off < chunk->size(); off += kUploadPiece) {
      std::string_view piece(chunk->data() + off, std::min(kUploadPiece, chunk->size() - off));
      s = write_frame(guard.get(), json{{"data", base64::encode(piece)}}, dl);
      if (s != io_status::ok) return send_failed(s);
    }
  }
  s = write_frame(guard.get(), json{{"end", true}}, dl);
  if (s != io_status::ok) return send_failed(s);
  return finish();
}

result<std::unique_ptr<connection>> connection::open(const std::string& socket_path, const json& request,
                                                     std::chrono::milliseconds timeout) {
  auto dl = deadline_after(timeout);
  auto fd = connect_agent(socket_path, dl);
  if (!fd) return fd.error();
  std::unique_ptr<connection> c{new connection(*fd, op_of(request))};
  if (auto s = write_frame(c->fd_, request, dl); s != io_status::ok) return io_failure(s, "");
  return c;
}

connection::~connection() {
  if (fd_ >= 0) ::close(fd_);
}

connection::next_status connection::next(json& out, std::chrono::milliseconds timeout, std::string* detail) {
  pollfd p{fd_, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (r == 0) return next_status::timeout;
  if (r < 0 && errno == EINTR) return next_status::timeout;
  // A frame has started: give the rest of it a generous deadline.
  auto s = read_frame(fd_, out, deadline_after(std::chrono::seconds(30)), detail);
  if (s != io_status::ok) return next_status::closed;
  if (auto ok = check_answer(op_, out); !ok) {
    if (detail) *detail = ok.error().message;
    return next_status::closed;
  }
  return next_status::frame;
}

status connection::send(const json& frame, std::chrono::milliseconds timeout) {
  auto s = write_frame(fd_, frame, deadline_after(timeout));
  if (s != io_status::ok) return io_failure(s, "");
  return success();
}

}  // namespace sandboxd::agent
