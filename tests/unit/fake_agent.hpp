// A fake in-sandbox agent for unit tests: listens on a unix socket in a
// temp dir and answers every connection's request frame with the bytes it
// was given (any frames, garbage, or nothing), then closes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "runtime/agent_protocol.hpp"
#include "tests/unit/unix_accept.hpp"

namespace sandboxd::fakes {

/// A frame on the wire: the length, then `body`.
inline std::string frame_bytes(const std::string& body) {
  uint32_t n = static_cast<uint32_t>(body.size());
  std::string out{char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
  return out + body;
}
inline std::string frame(const nlohmann::json& j) { return frame_bytes(j.dump()); }

/// Listens on <tmp>/agent.sock; reads each connection's request frame and
/// writes `answer` back, then closes.
class fake_agent {
public:
  fake_agent() {
    char tmpl[] = "/tmp/sandboxd-fake-agent-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/agent.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd_, 8) != 0)
      std::abort();
    thread_ = std::thread([this] { serve(); });
  }
  ~fake_agent() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }
  void answer(std::string bytes) {
    std::lock_guard<std::mutex> g{mu_};
    answer_ = std::move(bytes);
  }
  const std::string& socket() const { return path_; }

private:
  void serve() {
    while (!stop_) {
      int c = accept_soon(fd_);
      if (c < 0)
        continue;
      nlohmann::json request;
      agent::read_frame(c, request, agent::clock::now() + std::chrono::seconds(5));
      std::string bytes;
      {
        std::lock_guard<std::mutex> g{mu_};
        bytes = answer_;
      }
      auto by = agent::clock::now() + std::chrono::seconds(5);
      agent::write_all(c, bytes.data(), bytes.size(), by);
      ::close(c);
    }
  }

  std::string dir_, path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string answer_;
  std::thread thread_;
};

} // namespace sandboxd::fakes
