#include "actors/tunnel_pump.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sandboxd {

namespace {

constexpr uint64_t wake_key = 0;
constexpr uint64_t listener_bit = uint64_t{1} << 63;

// Edge-triggered: a socket whose peer hung up reports EPOLLHUP whatever we
// asked for, so a level-triggered fd we stopped reading (window full) would
// spin. Each side reads and writes until EAGAIN and remembers it may go on.
constexpr uint32_t conn_events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

bool again(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

} // namespace

template <class... Ts>
void tunnel_pump::send(const caf::strong_actor_ptr& to, Ts&&... xs) {
  // A dead self sends with no sender, which every peer ignores.
  auto me = caf::actor_cast<caf::actor>(self_);
  caf::send_as(me, caf::actor_cast<tunnel_peer_actor>(to), std::forward<Ts>(xs)...);
}

result<std::shared_ptr<tunnel_pump>> tunnel_pump::create(tunnel_limits limits) {
  if (limits.window == 0 || limits.chunk == 0)
    return bad_request("tunnel: window and chunk must be positive");
  std::shared_ptr<tunnel_pump> p(new tunnel_pump(limits));
  p->scratch_.resize(limits.chunk);
  p->epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (p->epoll_ < 0)
    return internal_error(errno_text("tunnel: epoll_create1"));
  p->wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->wake_ < 0)
    return internal_error(errno_text("tunnel: eventfd"));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = wake_key;
  if (::epoll_ctl(p->epoll_, EPOLL_CTL_ADD, p->wake_, &ev) != 0)
    return internal_error(errno_text("tunnel: epoll_ctl"));
  return p;
}

tunnel_pump::~tunnel_pump() {
  stop();
  // The loop closed the sockets on its way out; without run() there are none.
  for (auto& [key, l] : listeners_)
    ::close(l.fd);
  for (auto& [key, c] : conns_)
    ::close(c->fd);
  if (wake_ >= 0)
    ::close(wake_);
  if (epoll_ >= 0)
    ::close(epoll_);
}

void tunnel_pump::run(caf::actor_addr self) {
  self_ = std::move(self);
  // The thread holds the pump: stop() may be called on the thread itself
  // (an actor's state dropped there), which then finishes on its own.
  thread_ = std::thread([p = shared_from_this()] { p->loop(); });
}

void tunnel_pump::stop() {
  std::vector<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    dropped.swap(jobs_); // released outside the lock: they hold actor references
  }
  uint64_t one = 1;
  (void)!::write(wake_, &one, sizeof one);
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id())
      thread_.detach();
    else
      thread_.join();
  }
}

bool tunnel_pump::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_)
      return false;
    jobs_.push_back(std::move(job));
  }
  uint64_t one = 1;
  (void)!::write(wake_, &one, sizeof one);
  return true;
}

void tunnel_pump::listen(std::string sandbox, int fd, caf::strong_actor_ptr back) {
  bool queued = post([this, sandbox = std::move(sandbox), fd, back = std::move(back)]() mutable {
    auto old = listener_of_.find(sandbox);
    if (old != listener_of_.end()) { // the front withdraws first; never expected
      ::close(listeners_[old->second].fd);
      listeners_.erase(old->second);
    }
    uint64_t key = listener_bit | next_key_++;
    listener& l = listeners_[key];
    l.fd = fd;
    l.sandbox = sandbox;
    l.back_addr = caf::actor_cast<caf::actor_addr>(back);
    l.back = std::move(back);
    l.back_lost = lost_.count(l.back_addr) > 0;
    listener_of_[sandbox] = key;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = key;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0)
      spdlog::error("tunnel: {}", errno_text("epoll_ctl (listener)"));
    accept_all(l);
  });
  if (!queued)
    ::close(fd);
}

void tunnel_pump::unlisten(std::string sandbox) {
  post([this, sandbox = std::move(sandbox)] {
    auto it = listener_of_.find(sandbox);
    if (it != listener_of_.end()) {
      ::close(listeners_[it->second].fd);
      listeners_.erase(it->second);
      listener_of_.erase(it);
    }
    drop_where([&](const conn& c) { return c.sandbox == sandbox; }, true);
  });
}

void tunnel_pump::connect(caf::strong_actor_ptr front, uint64_t wire, std::string path) {
  post([this, front = std::move(front), wire, path = std::move(path)]() mutable {
    auto from = caf::actor_cast<caf::actor_addr>(front);
    if (lost_.count(from)) {
      // A front this end took for gone: hang up rather than leave its client waiting.
      send(front, atom::tunnel_close::value, wire);
      return;
    }
    if (wire == 0 || by_wire_.count({from, wire}))
      return; // a repeated open: the first one stands; 0 is no front's
    if (open_.load() >= limits_.total) {
      send(front, atom::tunnel_close::value, wire);
      return;
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      spdlog::warn("tunnel: {}", errno_text("socket"));
      send(front, atom::tunnel_close::value, wire);
      return;
    }
    auto c = std::make_unique<conn>();
    c->fd = fd;
    c->wire = wire;
    c->peer = std::move(front);
    c->peer_addr = from;
    c->connecting = true;
    c->path = std::move(path);
    c->deadline = std::chrono::steady_clock::now() + limits_.connect_timeout;
    auto& ref = *c;
    add_conn(std::move(c));
    try_connect(ref);
  });
}

void tunnel_pump::refuse(caf::strong_actor_ptr front, uint64_t wire) {
  post([this, front = std::move(front), wire] { send(front, atom::tunnel_close::value, wire); });
}

void tunnel_pump::data(caf::actor_addr from, uint64_t wire, std::string bytes) {
  post([this, from = std::move(from), wire, bytes = std::move(bytes)]() mutable {
    on_data(from, wire, std::move(bytes));
  });
}

void tunnel_pump::ack(caf::actor_addr from, uint64_t wire, uint64_t n) {
  post([this, from = std::move(from), wire, n] { on_ack(from, wire, n); });
}

void tunnel_pump::eof(caf::actor_addr from, uint64_t wire) {
  post([this, from = std::move(from), wire] { on_eof(from, wire); });
}

void tunnel_pump::close(caf::actor_addr from, uint64_t wire) {
  post([this, from = std::move(from), wire] { on_close(from, wire); });
}

void tunnel_pump::lost(caf::actor_addr peer) {
  post([this, peer = std::move(peer)] { on_lost(peer); });
}

void tunnel_pump::loop() {
  epoll_event events[128];
  for (;;) {
    // Connects refused with EAGAIN are retried every 10 ms.
    int n = ::epoll_wait(epoll_, events, 128, connecting_ > 0 ? 10 : -1);
    if (n < 0 && errno != EINTR) {
      spdlog::error("tunnel: {}", errno_text("epoll_wait"));
      break;
    }
    bool stopping = false;
    for (int i = 0; i < n && !stopping; ++i) {
      uint64_t key = events[i].data.u64;
      if (key == wake_key) {
        uint64_t count;
        (void)!::read(wake_, &count, sizeof count);
        std::vector<std::function<void()>> jobs;
        {
          std::lock_guard<std::mutex> lock(mu_);
          stopping = stopping_;
          jobs.swap(jobs_);
        }
        if (!stopping)
          for (auto& job : jobs)
            job();
      } else if (key & listener_bit) {
        auto it = listeners_.find(key);
        if (it != listeners_.end())
          accept_all(it->second);
      } else {
        auto it = conns_.find(key);
        if (it == conns_.end())
          continue; // dropped earlier in this batch
        conn& c = *it->second;
        uint32_t ev = events[i].events;
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
          c.may_read = true;
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
          c.may_write = true;
        service(key);
      }
    }
    if (stopping)
      break;
    if (connecting_ > 0)
      retry_connects();
  }
  // Every connection ends with its peer told; sockets files are the front's.
  drop_where([](const conn&) { return true; }, true);
  for (auto& [key, l] : listeners_)
    ::close(l.fd);
  listeners_.clear();
  listener_of_.clear();
}

void tunnel_pump::accept_all(listener& l) {
  for (;;) {
    int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (!again(errno)) // EMFILE and the like: the next connection retries
        spdlog::warn("tunnel: {}", errno_text("accept on " + l.sandbox));
      return;
    }
    // Past a limit, or with the back gone, the client sees a dead agent.
    if (l.back_lost || per_sandbox_[l.sandbox] >= limits_.per_sandbox ||
        open_.load() >= limits_.total) {
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<conn>();
    c->fd = fd;
    c->peer = l.back;
    c->peer_addr = l.back_addr;
    c->sandbox = l.sandbox;
    auto& ref = *c;
    add_conn(std::move(c));
    // The back takes bytes before it has connected (within the window).
    caf::send_as(caf::actor_cast<caf::actor>(self_),
                 caf::actor_cast<tunnel_back_actor>(ref.peer), atom::tunnel_open::value, ref.wire,
                 ref.sandbox);
    epoll_event ev{};
    ev.events = conn_events;
    ev.data.u64 = ref.key;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::error("tunnel: {}", errno_text("epoll_ctl (connection)"));
      drop(ref, true);
      continue;
    }
    service(ref.key);
  }
}

void tunnel_pump::add_conn(std::unique_ptr<conn> c) {
  c->key = next_key_++;
  if (c->wire == 0) // front: the key names the connection on the wire
    c->wire = c->key;
  if (c->connecting)
    ++connecting_;
  ++per_sandbox_[c->sandbox];
  ++open_;
  by_wire_[{c->peer_addr, c->wire}] = c->key;
  conns_[c->key] = std::move(c);
}

void tunnel_pump::try_connect(conn& c) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (c.path.empty() || c.path.size() >= sizeof addr.sun_path) {
    drop(c, true);
    return;
  }
  std::memcpy(addr.sun_path, c.path.data(), c.path.size());
  int r = ::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (r != 0 && errno != EISCONN) {
    // A unix socket answers EAGAIN while the listener's backlog is full.
    bool later = again(errno) || errno == EINPROGRESS || errno == EALREADY || errno == EINTR;
    if (!later || std::chrono::steady_clock::now() >= c.deadline)
      drop(c, true);
    return;
  }
  c.connecting = false;
  --connecting_;
  epoll_event ev{};
  ev.events = conn_events;
  ev.data.u64 = c.key;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    spdlog::error("tunnel: {}", errno_text("epoll_ctl (connection)"));
    drop(c, true);
    return;
  }
  service(c.key); // bytes may have waited for the connect
}

void tunnel_pump::drop_where(const std::function<bool(const conn&)>& which, bool tell_peer) {
  // Collected first: drop erases from conns_.
  std::vector<uint64_t> keys;
  for (auto& [key, c] : conns_)
    if (which(*c))
      keys.push_back(key);
  for (auto key : keys)
    drop(*conns_.at(key), tell_peer);
}

void tunnel_pump::retry_connects() {
  std::vector<uint64_t> keys;
  for (auto& [key, c] : conns_)
    if (c->connecting)
      keys.push_back(key);
  for (auto key : keys) {
    auto it = conns_.find(key);
    if (it != conns_.end())
      try_connect(*it->second);
  }
}

void tunnel_pump::service(uint64_t key) {
  auto it = conns_.find(key);
  if (it == conns_.end())
    return;
  conn& c = *it->second;
  if (!pump_write(c) || !pump_read(c))
    return;
  settle(c);
}

bool tunnel_pump::pump_write(conn& c) {
  if (c.connecting)
    return true;
  uint64_t wrote = 0;
  while (!c.pending.empty() && c.may_write) {
    const std::string& s = c.pending.front();
    ssize_t n = ::send(c.fd, s.data() + c.offset, s.size() - c.offset, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      wrote += static_cast<uint64_t>(n);
      c.offset += static_cast<size_t>(n);
      if (c.offset == s.size()) {
        c.pending.pop_front();
        c.offset = 0;
      }
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && again(errno)) {
      c.may_write = false;
      break;
    }
    drop(c, true); // the reader went away
    return false;
  }
  if (wrote > 0) {
    c.pending_bytes -= wrote;
    buffered_ -= wrote;
    send(c.peer, atom::tunnel_ack::value, c.wire, wrote);
  }
  if (c.peer_eof && c.pending.empty() && !c.wr_done) {
    ::shutdown(c.fd, SHUT_WR);
    c.wr_done = true;
  }
  return true;
}

bool tunnel_pump::pump_read(conn& c) {
  if (c.connecting)
    return true;
  while (!c.rd_done && c.may_read && c.unacked < limits_.window) {
    size_t want = std::min(limits_.chunk, limits_.window - c.unacked);
    ssize_t n = ::recv(c.fd, scratch_.data(), want, MSG_DONTWAIT);
    if (n > 0) {
      c.unacked += static_cast<uint64_t>(n);
      send(c.peer, atom::tunnel_data::value, c.wire,
           std::string(scratch_.data(), static_cast<size_t>(n)));
      continue;
    }
    if (n == 0) {
      c.rd_done = true;
      send(c.peer, atom::tunnel_eof::value, c.wire);
      break;
    }
    if (errno == EINTR)
      continue;
    if (again(errno)) {
      c.may_read = false;
      break;
    }
    drop(c, true);
    return false;
  }
  return true;
}

void tunnel_pump::settle(conn& c) {
  // Both directions ended here; the peer ends its half on our eof.
  if (c.rd_done && c.wr_done)
    drop(c, false);
}

void tunnel_pump::drop(conn& c, bool tell_peer) {
  if (tell_peer)
    send(c.peer, atom::tunnel_close::value, c.wire);
  ::close(c.fd); // also leaves the epoll set
  buffered_ -= c.pending_bytes;
  if (c.connecting)
    --connecting_;
  if (--per_sandbox_[c.sandbox] == 0)
    per_sandbox_.erase(c.sandbox);
  --open_;
  by_wire_.erase({c.peer_addr, c.wire});
  uint64_t key = c.key;
  conns_.erase(key); // c is gone
}

tunnel_pump::conn* tunnel_pump::find(const caf::actor_addr& from, uint64_t wire) {
  if (!from)
    return nullptr;
  auto it = by_wire_.find({from, wire});
  if (it == by_wire_.end())
    return nullptr;
  return conns_.at(it->second).get();
}

void tunnel_pump::on_data(const caf::actor_addr& from, uint64_t wire, std::string bytes) {
  conn* c = find(from, wire);
  if (!c || bytes.empty())
    return; // not the sender's, or already closed
  // A peer past its window (or sending after its eof) breaks the protocol:
  // the connection ends rather than buffer without bound.
  if (c->peer_eof || bytes.size() > limits_.chunk ||
      c->pending_bytes + bytes.size() > limits_.window) {
    spdlog::warn("tunnel: connection {} overran its window; closed", wire);
    drop(*c, true);
    return;
  }
  c->pending_bytes += bytes.size();
  buffered_ += bytes.size();
  c->pending.push_back(std::move(bytes));
  if (pump_write(*c))
    settle(*c);
}

void tunnel_pump::on_ack(const caf::actor_addr& from, uint64_t wire, uint64_t n) {
  conn* c = find(from, wire);
  if (!c)
    return;
  if (n > c->unacked) {
    spdlog::warn("tunnel: connection {} acknowledged bytes never sent; closed", wire);
    drop(*c, true);
    return;
  }
  c->unacked -= n;
  if (pump_read(*c))
    settle(*c);
}

void tunnel_pump::on_eof(const caf::actor_addr& from, uint64_t wire) {
  conn* c = find(from, wire);
  if (!c)
    return;
  c->peer_eof = true;
  if (pump_write(*c))
    settle(*c);
}

void tunnel_pump::on_close(const caf::actor_addr& from, uint64_t wire) {
  if (conn* c = find(from, wire))
    drop(*c, false);
}

void tunnel_pump::on_lost(const caf::actor_addr& peer) {
  lost_.insert(peer);
  // Told anyway: a peer declared lost that still runs frees its side.
  drop_where([&](const conn& c) { return c.peer_addr == peer; }, true);
  for (auto& [key, l] : listeners_)
    if (l.back_addr == peer)
      l.back_lost = true;
}

} // namespace sandboxd
