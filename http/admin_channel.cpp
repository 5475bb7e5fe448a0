#include "http/admin_channel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "storage/store.hpp"

namespace sandboxd {

namespace {

bool fill_addr(sockaddr_un& addr, const std::string& path) {
  if (path.size() >= sizeof addr.sun_path)
    return false;
  addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  return true;
}

// Requests are short; an answer may list a cluster's nodes.
constexpr size_t max_request = 4096;
constexpr size_t max_answer = 1 << 20;

std::string read_line(int fd, size_t max) {
  std::string line;
  char c;
  while (line.size() < max && ::read(fd, &c, 1) == 1 && c != '\n')
    line.push_back(c);
  return line;
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    off += static_cast<size_t>(n);
  }
}

std::string answer(store& db, const admin_handler& more, const std::string& line) {
  const std::string cmd = "keys-create ";
  if (line.rfind(cmd, 0) == 0) {
    auto key = db.create_key(line.substr(cmd.size()));
    if (!key)
      return "error " + key.error().message + "\n";
    return "ok " + *key + "\n";
  }
  if (more)
    if (auto r = more(line)) {
      if (!*r)
        return "error " + r->error().message + "\n";
      return "ok " + **r + "\n";
    }
  return "error unknown admin request\n";
}

} // namespace

struct admin_channel::impl {
  int fd = -1;
  std::string path;
  std::atomic<bool> stop{false};
  std::thread worker;
};

result<std::unique_ptr<admin_channel>>
admin_channel::start(const std::string& path, std::shared_ptr<store> db, admin_handler more) {
  sockaddr_un addr;
  if (!fill_addr(addr, path))
    return internal_error("admin socket path too long: " + path);
  ::unlink(path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto old = ::umask(0077);
  auto rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0 || ::listen(fd, 16) != 0) {
    ::close(fd);
    return internal_error("cannot listen on " + path + ": " + strerror(errno));
  }
  std::unique_ptr<admin_channel> ch{new admin_channel};
  ch->impl_ = std::make_unique<impl>();
  ch->impl_->fd = fd;
  ch->impl_->path = path;
  auto* state = ch->impl_.get();
  state->worker = std::thread([state, db, more] {
    while (!state->stop) {
      pollfd p{state->fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0)
        continue;
      int c = ::accept4(state->fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0)
        continue;
      timeval tv{5, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      write_all(c, answer(*db, more, read_line(c, max_request)));
      ::close(c);
    }
  });
  return ch;
}

admin_channel::~admin_channel() {
  impl_->stop = true;
  if (impl_->worker.joinable())
    impl_->worker.join();
  ::close(impl_->fd);
  ::unlink(impl_->path.c_str());
}

result<std::string> admin_request(const std::string& path, const std::string& line) {
  sockaddr_un addr;
  if (!fill_addr(addr, path))
    return internal_error("admin socket path too long: " + path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return failure{503, "no server on " + path};
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  write_all(fd, line + "\n");
  auto reply = read_line(fd, max_answer);
  ::close(fd);
  if (reply.rfind("ok ", 0) == 0)
    return reply.substr(3);
  if (reply.rfind("error ", 0) == 0)
    return bad_request(reply.substr(6));
  return internal_error("no answer from the server on " + path);
}

} // namespace sandboxd
