#include "http/tls_front.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <thread>
#include <vector>

#include "core/fd_closer.hpp"
#include "http/connection_gate.hpp"
#include "http/server.hpp"

namespace sandboxd::http {

void forwarded_clients::add(uint16_t port, std::string client) {
  std::lock_guard<std::mutex> guard{mtx_};
  by_port_[port] = std::move(client);
}

void forwarded_clients::remove(uint16_t port) {
  std::lock_guard<std::mutex> guard{mtx_};
  by_port_.erase(port);
}

std::optional<std::string> forwarded_clients::find(uint16_t port) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = by_port_.find(port);
  if (it == by_port_.end())
    return std::nullopt;
  return it->second;
}

namespace {

using clock = std::chrono::steady_clock;

// A handshake must be done within this of connecting (a browser's takes
// milliseconds; a slot held by a silent client is a slot lost for others).
constexpr auto handshake_timeout = std::chrono::seconds(10);
// Bytes in flight each way per connection: a client that does not read
// stops the listener's answer here, not in the front's memory.
constexpr size_t buffer_size = 16 * 1024;
constexpr int accepts_per_wake = 64;

struct buffer {
  char data[buffer_size];
  size_t len = 0, off = 0;
  bool empty() const { return off == len; }
  void clear() { len = off = 0; }
};

struct connection {
  uint64_t id = 0;
  int client = -1; // TLS
  int inner = -1;  // plain, to the listener
  SSL* ssl = nullptr;
  std::string key; // connection_gate's key of the client
  uint16_t local_port = 0;
  bool handshaking = true;
  bool connecting = false;
  clock::time_point deadline;
  buffer up;   // from the client, for the listener
  buffer down; // from the listener, for the client
  bool client_eof = false, inner_eof = false, inner_shut = false;
  bool want_read = false, want_write = false; // what the last TLS calls wait for
  // What each socket is watched for; 0: not in the epoll set at all (a
  // socket there is always watched for hang-ups, which would wake the loop
  // again and again while the connection waits on its other side).
  uint32_t client_events = 0, inner_events = 0;
};

// A client's handshake budget: a token bucket, refilled as time passes.
struct handshake_budget {
  double tokens = 0;
  clock::time_point at;

  void refill(clock::time_point now, const tls_front_limits& l) {
    auto elapsed = std::chrono::duration<double>(now - at).count();
    tokens = std::min(l.handshake_burst, tokens + elapsed * l.handshakes_per_second);
    at = now;
  }
};

void no_delay(int fd) {
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

} // namespace

struct tls_front::impl {
  ssl_ctx_ptr ctx;
  uint16_t inner_port = 0;
  std::shared_ptr<forwarded_clients> clients;
  tls_front_limits limits;
  int listener = -1, epoll = -1, wake = -1;
  std::thread loop;
  std::unordered_map<uint64_t, std::unique_ptr<connection>> conns;
  std::unordered_map<std::string, size_t> handshaking_by_client;
  // Only clients whose budget is not full again: dropped at each sweep.
  std::unordered_map<std::string, handshake_budget> budget_by_client;
  size_t handshaking = 0;
  uint64_t next_id = 1;
  bool listener_paused = false;

  // epoll's data: the connection's id, and which of its sockets.
  static uint64_t tag(uint64_t id, bool inner) { return id << 1 | (inner ? 1 : 0); }

  void run();
  void accept_all();
  void open(int fd, const std::string& key);
  void close(connection& c);
  void end_handshake(connection& c);
  bool connect_inner(connection& c);
  void pump(connection& c);
  void watch(connection& c);
  void sweep();
};

void tls_front::impl::run() {
  std::vector<epoll_event> events(256);
  auto next_sweep = clock::now() + std::chrono::seconds(1);
  for (;;) {
    int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 1000);
    if (n < 0 && errno != EINTR) {
      spdlog::error("TLS front: epoll_wait: {}", std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      auto data = events[i].data.u64;
      if (data == 0) // the wake descriptor: stop
        return;
      if (data == 1) {
        accept_all();
        continue;
      }
      auto it = conns.find(data >> 1);
      if (it != conns.end())
        pump(*it->second);
    }
    if (clock::now() >= next_sweep) {
      sweep();
      next_sweep = clock::now() + std::chrono::seconds(1);
    }
  }
}

void tls_front::impl::accept_all() {
  for (int i = 0; i < accepts_per_wake; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&addr), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // The connection stays queued and the listener readable: it is not
        // watched until the next sweep, or the loop would spin.
        spdlog::warn("TLS front: accept: {}; new connections wait a second", std::strerror(errno));
        ::epoll_ctl(epoll, EPOLL_CTL_DEL, listener, nullptr);
        listener_paused = true;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
                 && errno != ECONNABORTED) {
        spdlog::warn("TLS front: accept: {}", std::strerror(errno));
      }
      return;
    }
    char host[NI_MAXHOST] = {};
    ::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, nullptr, 0,
                  NI_NUMERICHOST);
    auto key = client_key(host);
    // Past a limit the connection is closed at once: nothing is read from
    // it, nothing is held for it.
    // A client without a budget entry has its whole burst; an entry is made
    // only for a connection let in, so refusals cost the map nothing.
    auto now = clock::now();
    auto budget = budget_by_client.find(key);
    if (budget != budget_by_client.end())
      budget->second.refill(now, limits);
    auto& mine = handshaking_by_client[key];
    if (conns.size() >= limits.connections || handshaking >= limits.handshakes
        || mine >= limits.handshakes_per_client
        || (budget != budget_by_client.end() && budget->second.tokens < 1)) {
      if (mine == 0)
        handshaking_by_client.erase(key);
      ::close(fd);
      continue;
    }
    if (budget == budget_by_client.end())
      budget = budget_by_client.emplace(key, handshake_budget{limits.handshake_burst, now}).first;
    budget->second.tokens -= 1;
    ++mine;
    ++handshaking;
    open(fd, key);
  }
}

void tls_front::impl::open(int fd, const std::string& key) {
  auto c = std::make_unique<connection>();
  c->id = next_id++;
  c->client = fd;
  c->key = key;
  c->deadline = clock::now() + handshake_timeout;
  c->ssl = SSL_new(ctx.get());
  no_delay(fd);
  auto& ref = *c;
  conns.emplace(c->id, std::move(c));
  if (!ref.ssl || SSL_set_fd(ref.ssl, fd) != 1) {
    spdlog::warn("TLS front: {}", ssl_error());
    close(ref);
    return;
  }
  SSL_set_accept_state(ref.ssl);
  // SSL_write may take a part of the buffer; the buffer never moves.
  SSL_set_mode(ref.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
  pump(ref);
}

void tls_front::impl::end_handshake(connection& c) {
  if (!c.handshaking)
    return;
  c.handshaking = false;
  --handshaking;
  auto it = handshaking_by_client.find(c.key);
  if (it != handshaking_by_client.end() && --it->second == 0)
    handshaking_by_client.erase(it);
}

void tls_front::impl::close(connection& c) {
  end_handshake(c);
  if (c.ssl)
    SSL_free(c.ssl);
  // Out of the epoll set first: a child forked meanwhile (a template build's)
  // may hold a copy of the descriptor, which would keep it there.
  if (c.client_events)
    ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.client, nullptr);
  if (c.inner_events)
    ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.inner, nullptr);
  if (c.client >= 0)
    ::close(c.client);
  if (c.inner >= 0) {
    // Reset, not closed: the port was bound by hand, and a closing side that
    // sent the first FIN would hold it in TIME_WAIT for a minute, out of
    // every connect() on the host. Nothing is lost: the listener has
    // answered (it closed first) or its client is gone.
    linger abort{1, 0};
    ::setsockopt(c.inner, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    ::close(c.inner);
  }
  if (c.local_port)
    clients->remove(c.local_port);
  conns.erase(c.id); // c is gone
}

// The listener must know the client before it accepts: the port is taken
// (bind) and named before the connection is made.
bool tls_front::impl::connect_inner(connection& c) {
  fd_closer fd{::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (fd.get() < 0)
    return false;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof local;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0
      || ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len) != 0)
    return false;
  c.local_port = ntohs(local.sin_port);
  clients->add(c.local_port, c.key);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(inner_port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0
      && errno != EINPROGRESS)
    return false;
  no_delay(fd.get());
  c.inner = fd.release();
  c.connecting = true;
  c.deadline = clock::now() + handshake_timeout;
  return true;
}

void tls_front::impl::pump(connection& c) {
  c.want_read = c.want_write = false;
  auto tls_wait = [&c](int r) {
    switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_READ:
      c.want_read = true;
      return true;
    case SSL_ERROR_WANT_WRITE:
      c.want_write = true;
      return true;
    default:
      return false;
    }
  };
  if (c.handshaking) {
    ERR_clear_error();
    int r = SSL_do_handshake(c.ssl);
    if (r != 1) {
      if (!tls_wait(r)) {
        spdlog::debug("TLS front: handshake with {}: {}", c.key, ssl_error());
        return close(c);
      }
      return watch(c);
    }
    end_handshake(c);
    if (!connect_inner(c)) {
      spdlog::warn("TLS front: cannot reach the API listener: {}", std::strerror(errno));
      return close(c);
    }
  }
  if (c.connecting) {
    pollfd p{c.inner, POLLOUT, 0};
    if (::poll(&p, 1, 0) == 0)
      return watch(c);
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.inner, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      spdlog::warn("TLS front: cannot reach the API listener: {}", std::strerror(err));
      return close(c);
    }
    c.connecting = false;
  }
  for (bool progress = true; progress;) {
    progress = false;
    c.want_read = c.want_write = false;
    // Client to listener.
    if (c.up.empty() && !c.client_eof) {
      ERR_clear_error();
      int r = SSL_read(c.ssl, c.up.data, sizeof c.up.data);
      if (r > 0) {
        c.up.len = static_cast<size_t>(r);
        c.up.off = 0;
        progress = true;
      } else if (SSL_get_error(c.ssl, r) == SSL_ERROR_ZERO_RETURN) {
        c.client_eof = true; // close_notify: it sends no more, it may still read
        progress = true;
      } else if (!tls_wait(r)) {
        return close(c); // cut, or broken: nothing more can reach it
      }
    }
    if (!c.up.empty()) {
      ssize_t n = ::send(c.inner, c.up.data + c.up.off, c.up.len - c.up.off, MSG_NOSIGNAL);
      if (n > 0) {
        c.up.off += static_cast<size_t>(n);
        progress = true;
        if (c.up.empty())
          c.up.clear();
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        // The listener stopped reading (it refused the request and closed):
        // the rest of the request goes nowhere, its answer still goes out.
        c.up.clear();
        c.client_eof = c.inner_shut = true;
        progress = true;
      }
    }
    if (c.client_eof && c.up.empty() && !c.inner_shut) {
      ::shutdown(c.inner, SHUT_WR);
      c.inner_shut = true;
    }
    // Listener to client.
    if (c.down.empty() && !c.inner_eof) {
      ssize_t n = ::recv(c.inner, c.down.data, sizeof c.down.data, 0);
      if (n > 0) {
        c.down.len = static_cast<size_t>(n);
        c.down.off = 0;
        progress = true;
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        c.inner_eof = true;
        progress = true;
      }
    }
    if (!c.down.empty()) {
      ERR_clear_error();
      int r = SSL_write(c.ssl, c.down.data + c.down.off, static_cast<int>(c.down.len - c.down.off));
      if (r > 0) {
        c.down.off += static_cast<size_t>(r);
        progress = true;
        if (c.down.empty())
          c.down.clear();
      } else if (!tls_wait(r)) {
        return close(c);
      }
    }
    if (c.inner_eof && c.down.empty()) {
      ERR_clear_error();
      SSL_shutdown(c.ssl); // best effort: the client may be gone already
      return close(c);
    }
  }
  watch(c);
}

// Waits for what the connection waits for, and nothing else: a full buffer
// stops reading its source until it drains.
void tls_front::impl::watch(connection& c) {
  uint32_t client = 0, inner = 0;
  if (c.want_read)
    client |= EPOLLIN;
  if (c.want_write)
    client |= EPOLLOUT;
  if (c.inner >= 0) {
    if (c.connecting || !c.up.empty())
      inner |= EPOLLOUT;
    if (!c.connecting && c.down.empty() && !c.inner_eof)
      inner |= EPOLLIN;
  }
  auto change = [this, &c](int fd, bool is_inner, uint32_t& now, uint32_t want) {
    if (fd < 0 || want == now)
      return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = tag(c.id, is_inner);
    ::epoll_ctl(epoll, now == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD, fd,
                &ev);
    now = want;
  };
  change(c.client, false, c.client_events, client);
  change(c.inner, true, c.inner_events, inner);
}

void tls_front::impl::sweep() {
  if (listener_paused) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 1;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &ev);
    listener_paused = false;
  }
  auto now = clock::now();
  for (auto it = budget_by_client.begin(); it != budget_by_client.end();) {
    it->second.refill(now, limits);
    it = it->second.tokens >= limits.handshake_burst ? budget_by_client.erase(it) : std::next(it);
  }
  std::vector<connection*> late;
  for (auto& [id, c] : conns)
    if ((c->handshaking || c->connecting) && now >= c->deadline)
      late.push_back(c.get());
  for (auto* c : late)
    close(*c);
}

result<std::unique_ptr<tls_front>>
tls_front::start(const std::string& listen, ssl_ctx_ptr ctx, uint16_t inner_port,
                 std::shared_ptr<forwarded_clients> clients, tls_front_limits limits) {
  auto hp = parse_listen(listen);
  if (!hp)
    return hp.error();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto port = std::to_string(hp->second);
  if (int rc = ::getaddrinfo(hp->first.c_str(), port.c_str(), &hints, &found); rc != 0)
    return bad_request("cannot listen on " + listen + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard{found, ::freeaddrinfo};
  std::unique_ptr<tls_front> f{new tls_front};
  f->impl_ = std::make_unique<impl>();
  auto& m = *f->impl_;
  m.ctx = std::move(ctx);
  m.inner_port = inner_port;
  m.clients = std::move(clients);
  m.limits = limits;
  m.listener = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int on = 1;
  if (m.listener < 0 || ::setsockopt(m.listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0
      || ::bind(m.listener, found->ai_addr, found->ai_addrlen) != 0
      || ::listen(m.listener, 4096) != 0)
    return failure{500, "cannot listen on " + listen + ": " + std::strerror(errno)};
  m.epoll = ::epoll_create1(EPOLL_CLOEXEC);
  m.wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m.epoll < 0 || m.wake < 0)
    return internal_error(errno_text("TLS front"));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  ::epoll_ctl(m.epoll, EPOLL_CTL_ADD, m.wake, &ev);
  ev.data.u64 = 1;
  ::epoll_ctl(m.epoll, EPOLL_CTL_ADD, m.listener, &ev);
  // Connection ids start at 1: their tags (id << 1 | side) are never 0 or 1.
  m.next_id = 1;
  // The thread takes no signals: those are the server's main thread's.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  m.loop = std::thread([&m] { m.run(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return f;
}

void tls_front::stop() {
  if (!impl_)
    return;
  auto& m = *impl_;
  if (m.loop.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(m.wake, &one, sizeof one);
    m.loop.join();
  }
  while (!m.conns.empty())
    m.close(*m.conns.begin()->second);
  for (int* fd : {&m.listener, &m.epoll, &m.wake})
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
}

tls_front::~tls_front() {
  stop();
}

} // namespace sandboxd::http
