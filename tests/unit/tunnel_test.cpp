// The tunnel (actors/tunnel.hpp) between two actor systems in one process,
// joined by CAF's middleman over loopback TCP so every message really is
// serialized: a control node's front, a worker's back, and a small unix
// "agent" server (echo, or a flood of bytes) where the sandbox's agent socket
// would be.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/interfaces.hpp"
#include "actors/tunnel.hpp"
#include "core/ids.hpp"
#include "tests/unit/unix_accept.hpp"

namespace sandboxd {
namespace {

using namespace std::chrono_literals;

const std::string eof_marker = "<eof>";

// A directory under /tmp, removed with everything in it.
struct temp_dir {
  std::string path;
  temp_dir() {
    char t[] = "/tmp/tunnel-test-XXXXXX";
    if (::mkdtemp(t))
      path = t;
  }
  ~temp_dir() {
    std::error_code ec;
    if (!path.empty())
      std::filesystem::remove_all(path, ec);
  }
};

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred())
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}

// A blocking client connection whose reads and writes give up after 20 s,
// so a broken tunnel fails the test instead of hanging it.
int dial(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto addr = unix_address(path);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool write_all(int fd, const std::string& s) { return write_all(fd, s.data(), s.size()); }

// Reads exactly `n` bytes (fewer on EOF, error or timeout).
std::string read_n(int fd, size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// Reads until the end of stream; `clean` says it was one (not an error or
// a timeout; a reset counts as an end, as a dead agent's would).
std::string read_to_end(int fd, bool* clean = nullptr) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r > 0) {
      out.append(buf, static_cast<size_t>(r));
      continue;
    }
    if (clean)
      *clean = r == 0 || errno == ECONNRESET;
    return out;
  }
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stol(line.substr(6));
  return -1;
}

// The sandbox's agent as far as bytes go: echo (and "<eof>" once the client's
// end of stream arrived), or a flood of `flood` bytes. A thread per
// connection: a test server.
class fake_agent {
public:
  enum class mode { echo, flood };

  fake_agent(std::string path, mode m, size_t flood = 0) : mode_(m), flood_(flood) {
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto addr = unix_address(path);
    ok_ = ::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          ::listen(listen_, 256) == 0;
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~fake_agent() {
    stop_ = true;
    acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : live_) // unblocks their threads
        ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : handlers_)
      t.join();
    ::close(listen_);
  }

  bool ok() const { return ok_; }
  size_t live() {
    std::lock_guard<std::mutex> lock(mu_);
    return live_.size();
  }
  uint64_t written() const { return written_.load(); }

private:
  void accept_loop() {
    while (!stop_) {
      int fd = sandboxd::fakes::accept_soon(listen_);
      if (fd < 0)
        continue;
      std::lock_guard<std::mutex> lock(mu_);
      live_.insert(fd);
      handlers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    if (mode_ == mode::echo) {
      char buf[65536];
      for (;;) {
        ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR)
          continue;
        if (r == 0) { // the client's half-close: still answer
          (void)write_all(fd, eof_marker);
          ::shutdown(fd, SHUT_WR);
          break;
        }
        if (r < 0 || !write_all(fd, buf, static_cast<size_t>(r)))
          break;
      }
    } else {
      std::string chunk(65536, 'f');
      for (size_t sent = 0; sent < flood_ && !stop_;) {
        size_t n = std::min(chunk.size(), flood_ - sent);
        if (!write_all(fd, chunk.data(), n))
          break;
        sent += n;
        written_ += n;
      }
      ::shutdown(fd, SHUT_WR);
      char c;
      while (::recv(fd, &c, 1, 0) > 0) {
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(fd);
    ::close(fd);
  }

  mode mode_;
  size_t flood_;
  int listen_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> written_{0};
  std::mutex mu_;
  std::set<int> live_;
  std::vector<std::thread> handlers_;
  std::thread acceptor_;
};

// One node: a config (which must outlive its system) and the system.
struct node {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  node() {
    add_message_types(cfg);
    cfg.load<caf::io::middleman>();
    cfg.set("scheduler.max-threads", 2);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

// Closes a client descriptor on scope exit.
struct client {
  int fd;
  explicit client(int f) : fd(f) {}
  ~client() {
    if (fd >= 0)
      ::close(fd);
  }
};

class Tunnel : public ::testing::Test {
protected:
  void SetUp() override {
    worker_ = std::make_unique<node>();
    control_ = std::make_unique<node>();
    ASSERT_FALSE(agents_.path.empty());
    ASSERT_FALSE(fronts_.path.empty());
    // The worker's own paths: nothing from a message reaches the file system.
    auto back = spawn_tunnel_back(*worker_->sys, [this](const std::string& id) -> result<std::string> {
      return agents_.path + "/" + id + ".agent";
    });
    ASSERT_TRUE(back) << back.error().message;
    local_back_ = *back;
    auto port = worker_->sys->middleman().publish(local_back_, 0, "127.0.0.1");
    ASSERT_TRUE(port) << worker_->sys->render(port.error());
    auto remote = control_->sys->middleman().remote_actor<tunnel_back_actor>("127.0.0.1", *port);
    ASSERT_TRUE(remote) << control_->sys->render(remote.error());
    back_ = *remote;
    start_front({});
  }

  void TearDown() override {
    front_.reset();
    agents_list_.clear();
    back_ = nullptr;
    if (local_back_)
      caf::anon_send_exit(local_back_, caf::exit_reason::user_shutdown);
    local_back_ = nullptr;
    control_.reset();
    worker_.reset();
  }

  void start_front(tunnel_limits limits) {
    front_.reset();
    auto f = tunnel_front::start(*control_->sys, fronts_.path + "/front", limits);
    ASSERT_TRUE(f) << f.error().message;
    front_ = std::move(*f);
  }

  fake_agent& agent(const std::string& id, fake_agent::mode m, size_t flood = 0) {
    agents_list_.push_back(
      std::make_unique<fake_agent>(agents_.path + "/" + id + ".agent", m, flood));
    EXPECT_TRUE(agents_list_.back()->ok());
    return *agents_list_.back();
  }

  // An echo agent for a new sandbox, exposed through the front.
  std::string echo_sandbox() {
    auto id = new_sandbox_id();
    agent(id, fake_agent::mode::echo);
    auto st = front_->expose(id, back_);
    EXPECT_TRUE(st) << st.error().message;
    return id;
  }

  temp_dir agents_, fronts_;
  std::unique_ptr<node> worker_, control_;
  tunnel_back_actor local_back_; // in the worker's system
  tunnel_back_actor back_;       // its proxy on the control node
  std::unique_ptr<tunnel_front> front_;
  std::vector<std::unique_ptr<fake_agent>> agents_list_;
};

TEST_F(Tunnel, BytesRoundTrip) {
  auto id = echo_sandbox();
  struct stat st{};
  ASSERT_EQ(::stat(front_->path(id).c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  client c(dial(front_->path(id)));
  ASSERT_GE(c.fd, 0);
  ASSERT_TRUE(write_all(c.fd, "hello"));
  EXPECT_EQ(read_n(c.fd, 5), "hello");
  ASSERT_TRUE(write_all(c.fd, "again"));
  EXPECT_EQ(read_n(c.fd, 5), "again");
}

TEST_F(Tunnel, ThirtyTwoMebibytesBothWaysIntact) {
  auto id = echo_sandbox();
  client c(dial(front_->path(id)));
  ASSERT_GE(c.fd, 0);
  std::string sent(32u << 20, '\0');
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= sent.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&sent[i], &v, 8);
  }
  // The client writes while it reads the echo: both directions carry it all.
  std::thread writer([&] {
    EXPECT_TRUE(write_all(c.fd, sent));
    ::shutdown(c.fd, SHUT_WR);
  });
  bool clean = false;
  auto got = read_to_end(c.fd, &clean);
  writer.join();
  EXPECT_TRUE(clean);
  ASSERT_EQ(got.size(), sent.size() + eof_marker.size());
  EXPECT_EQ(got.substr(sent.size()), eof_marker);
  got.resize(sent.size());
  EXPECT_EQ(fnv1a(got), fnv1a(sent));
  EXPECT_TRUE(got == sent);
  EXPECT_TRUE(wait_until([&] { return front_->connections() == 0; }));
}

TEST_F(Tunnel, HalfCloseReachesTheAgentWhichStillAnswers) {
  auto id = echo_sandbox();
  client c(dial(front_->path(id)));
  ASSERT_GE(c.fd, 0);
  ASSERT_TRUE(write_all(c.fd, "ping"));
  ASSERT_EQ(::shutdown(c.fd, SHUT_WR), 0);
  // The agent read "ping" then EOF, and answered after it: "<eof>" is
  // written only once it saw the end. Then the client reads EOF.
  bool clean = false;
  EXPECT_EQ(read_to_end(c.fd, &clean), "ping" + eof_marker);
  EXPECT_TRUE(clean);
  EXPECT_TRUE(wait_until([&] { return front_->connections() == 0; }));
  EXPECT_TRUE(wait_until([&] { return agents_list_[0]->live() == 0; }));
}

TEST_F(Tunnel, ConnectFailureIsAnEndOfStream) {
  auto id = new_sandbox_id(); // no agent listens there
  ASSERT_TRUE(front_->expose(id, back_));
  client c(dial(front_->path(id)));
  ASSERT_GE(c.fd, 0);
  bool clean = false;
  EXPECT_EQ(read_to_end(c.fd, &clean), "");
  EXPECT_TRUE(clean);
  EXPECT_TRUE(wait_until([&] { return front_->connections() == 0; }));
}

TEST_F(Tunnel, WithdrawClosesConnectionsAndRemovesTheSocket) {
  auto id = echo_sandbox();
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<client>(dial(front_->path(id))));
    ASSERT_GE(clients.back()->fd, 0);
    ASSERT_TRUE(write_all(clients.back()->fd, "x"));
    ASSERT_EQ(read_n(clients.back()->fd, 1), "x");
  }
  EXPECT_EQ(front_->connections(), 3u);
  front_->withdraw(id);
  for (auto& c : clients) {
    bool clean = false;
    EXPECT_EQ(read_to_end(c->fd, &clean), "");
    EXPECT_TRUE(clean);
  }
  struct stat st{};
  EXPECT_NE(::stat(front_->path(id).c_str(), &st), 0);
  EXPECT_EQ(dial(front_->path(id)), -1);
  EXPECT_TRUE(wait_until([&] { return front_->connections() == 0; }));
  // The back closed its side too: the agent saw each connection end.
  EXPECT_TRUE(wait_until([&] { return agents_list_[0]->live() == 0; }));
  // And the sandbox can be exposed again.
  ASSERT_TRUE(front_->expose(id, back_));
  client again(dial(front_->path(id)));
  ASSERT_TRUE(write_all(again.fd, "y"));
  EXPECT_EQ(read_n(again.fd, 1), "y");
}

TEST_F(Tunnel, HundredConcurrentConnections) {
  auto id = echo_sandbox();
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 100; ++i) {
    clients.push_back(std::make_unique<client>(dial(front_->path(id))));
    ASSERT_GE(clients.back()->fd, 0);
    ASSERT_TRUE(write_all(clients.back()->fd, "conn-" + std::to_string(i)));
  }
  EXPECT_TRUE(wait_until([&] { return front_->connections() == 100; }));
  EXPECT_TRUE(wait_until([&] { return agents_list_[0]->live() == 100; }));
  for (auto& c : clients)
    ::shutdown(c->fd, SHUT_WR);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(read_to_end(clients[i]->fd), "conn-" + std::to_string(i) + eof_marker);
  EXPECT_TRUE(wait_until([&] { return front_->connections() == 0; }));
  EXPECT_TRUE(wait_until([&] { return agents_list_[0]->live() == 0; }));
}

TEST_F(Tunnel, SlowReaderKeepsMemoryBounded) {
  const size_t flood = 64u << 20;
  auto id = new_sandbox_id();
  auto& a = agent(id, fake_agent::mode::flood, flood);
  ASSERT_TRUE(front_->expose(id, back_));
  long rss_before = rss_kib();
  client c(dial(front_->path(id)));
  ASSERT_GE(c.fd, 0);
  // The client reads nothing: the agent soon blocks, held back by the
  // windows (and the sockets' own buffers).
  uint64_t last = 0;
  auto stalled_since = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] {
    uint64_t now = a.written();
    if (now != last) {
      last = now;
      stalled_since = std::chrono::steady_clock::now();
    }
    return now > 0 && std::chrono::steady_clock::now() - stalled_since > 500ms;
  }, 15s));
  EXPECT_LT(a.written(), 8u << 20);
  EXPECT_LE(front_->buffered_bytes(), tunnel_limits{}.window);
  long rss_after = rss_kib();
  EXPECT_LT(rss_after - rss_before, 32 * 1024) << "RSS grew from " << rss_before << " KiB";
  // Reading resumes the flow: every byte arrives.
  bool clean = false;
  auto got = read_to_end(c.fd, &clean);
  EXPECT_TRUE(clean);
  EXPECT_EQ(got.size(), flood);
  EXPECT_TRUE(wait_until([&] { return front_->buffered_bytes() == 0; }));
}

TEST_F(Tunnel, LostBackEndsConnections) {
  auto id = echo_sandbox();
  client c(dial(front_->path(id)));
  ASSERT_GE(c.fd, 0);
  ASSERT_TRUE(write_all(c.fd, "x"));
  ASSERT_EQ(read_n(c.fd, 1), "x");
  front_->lost(back_);
  bool clean = false;
  EXPECT_EQ(read_to_end(c.fd, &clean), "");
  EXPECT_TRUE(clean);
  EXPECT_TRUE(wait_until([&] { return front_->connections() == 0; }));
  // New connections to its sandboxes are hung up on at once.
  client late(dial(front_->path(id)));
  ASSERT_GE(late.fd, 0);
  EXPECT_EQ(read_to_end(late.fd, &clean), "");
  EXPECT_TRUE(clean);
  // A back still running was told: the agent's connection ended.
  EXPECT_TRUE(wait_until([&] { return agents_list_[0]->live() == 0; }));
}

TEST_F(Tunnel, DeadBackEndsConnections) {
  auto id = echo_sandbox();
  client c(dial(front_->path(id)));
  ASSERT_GE(c.fd, 0);
  ASSERT_TRUE(write_all(c.fd, "x"));
  ASSERT_EQ(read_n(c.fd, 1), "x");
  // The worker's back exits: the front sees its proxy go down.
  caf::anon_send_exit(local_back_, caf::exit_reason::user_shutdown);
  bool clean = false;
  EXPECT_EQ(read_to_end(c.fd, &clean), "");
  EXPECT_TRUE(clean);
  EXPECT_TRUE(wait_until([&] { return front_->connections() == 0; }));
  EXPECT_TRUE(wait_until([&] { return agents_list_[0]->live() == 0; }));
}

TEST_F(Tunnel, StrangersTrafficIsIgnored) {
  auto id = echo_sandbox();
  client c(dial(front_->path(id)));
  ASSERT_GE(c.fd, 0);
  ASSERT_TRUE(write_all(c.fd, "x"));
  ASSERT_EQ(read_n(c.fd, 1), "x");
  {
    // An actor that is not the connection's back, on the control node...
    caf::scoped_actor stranger{*control_->sys};
    auto front = front_->actor();
    for (uint64_t conn = 0; conn < 64; ++conn) {
      stranger->send(front, atom::tunnel_data::value, conn, std::string(1000, 'z'));
      stranger->send(front, atom::tunnel_ack::value, conn, uint64_t{1} << 40);
      stranger->send(front, atom::tunnel_eof::value, conn);
      stranger->send(front, atom::tunnel_close::value, conn);
      caf::anon_send(front, atom::tunnel_close::value, conn);
    }
    // ...and one on the worker, which is not the connection's front.
    caf::scoped_actor other{*worker_->sys};
    for (uint64_t conn = 0; conn < 64; ++conn) {
      other->send(local_back_, atom::tunnel_data::value, conn, std::string(1000, 'z'));
      other->send(local_back_, atom::tunnel_eof::value, conn);
      other->send(local_back_, atom::tunnel_close::value, conn);
    }
    // An id that is no sandbox id never becomes a path.
    other->send(local_back_, atom::tunnel_open::value, uint64_t{7}, std::string("../../etc"));
    other->receive([](atom::tunnel_close, uint64_t conn) { EXPECT_EQ(conn, 7u); },
                   caf::after(std::chrono::seconds(10)) >> [] { ADD_FAILURE() << "no close"; });
  }
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(write_all(c.fd, "still"));
  EXPECT_EQ(read_n(c.fd, 5), "still");
  // (counted down just after the write the client may already have read)
  EXPECT_TRUE(wait_until([&] { return front_->buffered_bytes() == 0; }));
  EXPECT_EQ(front_->connections(), 1u);
  EXPECT_FALSE(front_->expose("../../etc/passwd", back_));
}

TEST_F(Tunnel, ConnectionsPerSandboxAreCapped) {
  tunnel_limits limits;
  limits.per_sandbox = 2;
  start_front(limits);
  auto id = echo_sandbox();
  client a(dial(front_->path(id))), b(dial(front_->path(id)));
  ASSERT_TRUE(write_all(a.fd, "a"));
  ASSERT_EQ(read_n(a.fd, 1), "a");
  ASSERT_TRUE(write_all(b.fd, "b"));
  ASSERT_EQ(read_n(b.fd, 1), "b");
  client third(dial(front_->path(id)));
  ASSERT_GE(third.fd, 0);
  bool clean = false;
  EXPECT_EQ(read_to_end(third.fd, &clean), "");
  EXPECT_TRUE(clean);
  EXPECT_EQ(front_->connections(), 2u);
  ASSERT_TRUE(write_all(a.fd, "!"));
  EXPECT_EQ(read_n(a.fd, 1), "!");
}

} // namespace
} // namespace sandboxd
