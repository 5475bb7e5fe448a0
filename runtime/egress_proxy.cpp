#include "runtime/egress_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

#include "core/ascii.hpp"
#include "core/fd_closer.hpp"
#include "runtime/byte_relay.hpp"
#include "runtime/tls_common.hpp"

namespace sandboxd {

// ---- pure helpers -------------------------------------------------------------

client_hello parse_client_hello(std::string_view b) {
  auto u8 = [&](size_t i) { return static_cast<uint8_t>(b[i]); };
  auto u16 = [&](size_t i) { return static_cast<size_t>(u8(i) << 8 | u8(i + 1)); };
  if (b.empty())
    return {hello_kind::need_more, {}};
  if (u8(0) != 0x16)
    return {hello_kind::not_tls, {}};
  if (b.size() < 5)
    return {hello_kind::need_more, {}};
  if (u8(1) != 0x03)
    return {hello_kind::not_tls, {}};
  size_t rec = u16(3);
  if (rec == 0 || rec > 16384 + 2048)
    return {hello_kind::not_tls, {}};
  if (b.size() < 5 + rec)
    return {hello_kind::need_more, {}};
  auto m = b.substr(5, rec);
  auto mu8 = [&](size_t i) { return static_cast<uint8_t>(m[i]); };
  auto mu16 = [&](size_t i) { return static_cast<size_t>(mu8(i) << 8 | mu8(i + 1)); };
  if (m.size() < 4 || mu8(0) != 0x01)
    return {hello_kind::not_tls, {}};
  size_t hs = static_cast<size_t>(mu8(1)) << 16 | mu16(2);
  if (hs + 4 > m.size())
    return {hello_kind::no_sni, {}}; // spread over records: not looked into
  size_t p = 4 + 2 + 32; // version, random
  auto need = [&](size_t n) { return p + n <= 4 + hs; };
  if (!need(1))
    return {hello_kind::no_sni, {}};
  p += 1 + mu8(p); // session id
  if (!need(2))
    return {hello_kind::no_sni, {}};
  p += 2 + mu16(p); // cipher suites
  if (!need(1))
    return {hello_kind::no_sni, {}};
  p += 1 + mu8(p); // compression methods
  if (!need(2))
    return {hello_kind::no_sni, {}};
  size_t ext_end = p + 2 + mu16(p);
  p += 2;
  if (ext_end > 4 + hs)
    return {hello_kind::no_sni, {}};
  while (p + 4 <= ext_end) {
    size_t type = mu16(p), len = mu16(p + 2);
    p += 4;
    if (p + len > ext_end)
      break;
    if (type == 0 && len >= 5) { // server_name: list, then (type 0, name)
      size_t q = p + 2;
      size_t list_end = std::min(p + 2 + mu16(p), p + len);
      while (q + 3 <= list_end) {
        size_t name_type = mu8(q), name_len = mu16(q + 1);
        q += 3;
        if (q + name_len > list_end)
          break;
        if (name_type == 0)
          return {hello_kind::sni, ascii_lower(std::string{m.substr(q, name_len)})};
        q += name_len;
      }
      break;
    }
    p += len;
  }
  return {hello_kind::no_sni, {}};
}

result<std::string> rewrite_request_head(
  std::string_view head, const std::vector<std::pair<std::string, std::string>>& set) {
  auto end = head.find("\r\n\r\n");
  if (end == std::string_view::npos)
    return bad_request("not a request head");
  std::vector<std::string_view> lines;
  size_t at = 0;
  while (at < end + 2) {
    auto nl = head.find("\r\n", at);
    lines.push_back(head.substr(at, nl - at));
    at = nl + 2;
  }
  if (lines.empty() || lines[0].find(" HTTP/1.") == std::string_view::npos)
    return bad_request("not an HTTP/1.x request");
  bool upgrade = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto colon = lines[i].find(':');
    if (colon == std::string_view::npos || colon == 0)
      return bad_request("a header line without a name");
    if (ascii_lower(std::string{lines[i].substr(0, colon)}) == "upgrade")
      upgrade = true;
  }
  std::string out{lines[0]};
  out += "\r\n";
  for (size_t i = 1; i < lines.size(); ++i) {
    auto name = ascii_lower(std::string{lines[i].substr(0, lines[i].find(':'))});
    bool replaced = std::any_of(set.begin(), set.end(),
                                [&](auto& h) { return ascii_lower(h.first) == name; });
    if (replaced || (!upgrade && (name == "connection" || name == "keep-alive")))
      continue;
    out += lines[i];
    out += "\r\n";
  }
  for (auto& [name, value] : set)
    out += name + ": " + value + "\r\n";
  if (!upgrade)
    out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

// ---- the component ------------------------------------------------------------

struct egress_proxy::sandbox_entry {
  std::string id;
  uint32_t host = 0, sandbox = 0;
  std::shared_ptr<fd_closer> listener;
  std::mutex mtx; // guards policy and resolved
  network_policy policy;
  resolved_policy resolved;
  std::atomic<size_t> open{0};
};

namespace {

constexpr auto hello_wait = std::chrono::seconds(10);
constexpr auto connect_wait = std::chrono::seconds(10);
constexpr auto head_wait = std::chrono::seconds(30); // the request head, all of it
constexpr int io_timeout_s = 60;                   // any single read or write
constexpr auto relay_idle = std::chrono::minutes(5);
constexpr size_t max_head = 64 * 1024;
constexpr size_t max_hello = 16384 + 2048 + 5;


// Timeouts on every blocking call, and no Nagle delay: TLS records and
// request heads go out as soon as they are whole.
void set_timeouts(int fd) {
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  timeval tv{io_timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Addresses a sandbox's connection may never be taken to through the host:
// the host's own (cached for a few seconds), loopback, "this network",
// multicast and broadcast.
bool host_destination(uint32_t dst) {
  if ((dst >> 24) == 127 || (dst >> 24) == 0 || (dst >> 28) == 0xe || dst == 0xffffffffu)
    return true;
  static std::mutex mtx;
  static std::vector<uint32_t> local;
  static std::chrono::steady_clock::time_point taken;
  std::lock_guard<std::mutex> guard{mtx};
  auto now = std::chrono::steady_clock::now();
  if (local.empty() || now - taken > std::chrono::seconds(5)) {
    local.clear();
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == 0) {
      for (auto* i = list; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
          local.push_back(ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr));
      ::freeifaddrs(list);
    }
    taken = now;
  }
  return std::find(local.begin(), local.end(), dst) != local.end();
}

result<int> connect_to(uint32_t dst, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return internal_error(errno_text("socket"));
  fd_closer guard{fd};
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(dst);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS)
    return bad_gateway(errno_text("connect"));
  pollfd p{fd, POLLOUT, 0};
  int n = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(connect_wait).count()));
  int err = 0;
  socklen_t len = sizeof err;
  if (n <= 0)
    return bad_gateway("connect: timed out");
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err)
    return bad_gateway(std::string{"connect: "} + strerror(err));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  set_timeouts(fd);
  return guard.release();
}

// Waits for a complete ClientHello (or proof there is none) without taking
// it off the socket.
client_hello peek_hello(int fd) {
  std::string buf(max_hello, '\0');
  auto until = std::chrono::steady_clock::now() + hello_wait;
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
      return {hello_kind::not_tls, {}};
    if (n > 0) {
      auto h = parse_client_hello(std::string_view{buf.data(), static_cast<size_t>(n)});
      if (h.kind != hello_kind::need_more || static_cast<size_t>(n) == buf.size())
        return h.kind == hello_kind::need_more ? client_hello{hello_kind::no_sni, {}} : h;
    } else if (errno != EAGAIN && errno != EINTR) {
      return {hello_kind::not_tls, {}};
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return {hello_kind::no_sni, {}};
    // Nothing yet: wait for bytes. Part of the hello: poll would report the
    // peeked bytes at once, so wait a little before looking again.
    pollfd p{fd, static_cast<short>(n > 0 ? POLLRDHUP : POLLIN | POLLRDHUP), 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), n > 0 ? 5 : left.count())));
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
      return {hello_kind::not_tls, {}};
  }
}

struct ssl_closer {
  SSL* ssl = nullptr;
  ~ssl_closer() {
    if (ssl)
      SSL_free(ssl);
  }
};

bool write_all(SSL* ssl, const char* data, size_t size) {
  while (size > 0) {
    int n = SSL_write(ssl, data, static_cast<int>(std::min<size_t>(size, 1 << 20)));
    if (n <= 0)
      return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// A plain answer to the sandbox's client when the request cannot go on.
void answer(SSL* ssl, int status, const std::string& reason, const std::string& text) {
  auto body = "sandboxd egress proxy: " + text + "\n";
  auto head = "HTTP/1.1 " + std::to_string(status) + " " + reason
              + "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: "
              + std::to_string(body.size()) + "\r\n\r\n";
  (void)write_all(ssl, (head + body).data(), head.size() + body.size()); // best effort: closing
  SSL_shutdown(ssl);
  // Unread bytes at close would reset the connection before the client
  // reads the answer: end our side, then drain what is left for a moment.
  int fd = SSL_get_fd(ssl);
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 64; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0 || ::recv(fd, sink, sizeof sink, 0) <= 0)
      break;
  }
}

// Copies decrypted bytes both ways until both directions ended, an error,
// or nothing moved for relay_idle.
void relay_tls(SSL* a, SSL* b) {
  bool a_open = true, b_open = true;
  std::string buf(64 * 1024, '\0');
  auto pump = [&](SSL* from, SSL* to, bool& open) {
    int n = SSL_read(from, buf.data(), static_cast<int>(buf.size()));
    if (n > 0) {
      if (!write_all(to, buf.data(), static_cast<size_t>(n)))
        return false;
      return true;
    }
    int err = SSL_get_error(from, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
      return true;
    open = false;
    SSL_shutdown(to); // pass the end on
    ERR_clear_error();
    return true;
  };
  while (a_open || b_open) {
    bool ready_a = a_open && SSL_pending(a) > 0, ready_b = b_open && SSL_pending(b) > 0;
    if (!ready_a && !ready_b) {
      pollfd p[2] = {{a_open ? SSL_get_fd(a) : -1, POLLIN, 0},
                     {b_open ? SSL_get_fd(b) : -1, POLLIN, 0}};
      int n = ::poll(p, 2, static_cast<int>(std::chrono::milliseconds(relay_idle).count()));
      if (n <= 0)
        return;
      ready_a = p[0].revents != 0;
      ready_b = p[1].revents != 0;
    }
    if (ready_a && !pump(a, b, a_open))
      return;
    if (ready_b && !pump(b, a, b_open))
      return;
  }
}


} // namespace

egress_proxy::egress_proxy(egress_proxy_config config) : config_(std::move(config)) {}

result<std::shared_ptr<egress_proxy>> egress_proxy::start(egress_proxy_config config) {
  if (!config.ca)
    return internal_error("egress proxy: no CA");
  std::shared_ptr<egress_proxy> p{new egress_proxy(std::move(config))};
  p->server_ctx_ = SSL_CTX_new(TLS_server_method());
  p->client_ctx_ = SSL_CTX_new(TLS_client_method());
  if (!p->server_ctx_ || !p->client_ctx_)
    return internal_error("egress proxy: " + ssl_error());
  for (auto* ctx : {p->server_ctx_, p->client_ctx_}) {
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // A record that carries no data (a session ticket) must not block a read.
    SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
  }
  SSL_CTX_set_alpn_select_cb(p->server_ctx_, select_alpn_http1, nullptr);
  SSL_CTX_set_alpn_protos(p->client_ctx_, alpn_http1, sizeof alpn_http1);
  SSL_CTX_set_verify(p->client_ctx_, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_set_default_verify_paths(p->client_ctx_) != 1)
    return internal_error("egress proxy: the system's CA store: " + ssl_error());
  if (!p->config_.trust_file.empty()
      && SSL_CTX_load_verify_locations(p->client_ctx_, p->config_.trust_file.c_str(), nullptr) != 1)
    return bad_request("egress proxy: cannot load " + p->config_.trust_file + ": " + ssl_error());
  p->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wake_fd_ < 0)
    return internal_error(errno_text("eventfd"));
  // The threads take no signals: those are the server's main thread's.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  p->acceptor_ = std::thread([raw = p.get()] { raw->accept_loop(); });
  for (size_t i = 0; i < p->config_.threads; ++i)
    p->workers_.emplace_back([raw = p.get()] { raw->work_loop(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return p;
}

egress_proxy::~egress_proxy() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stop_ = true;
  }
  uint64_t one = 1;
  if (wake_fd_ >= 0)
    (void)!::write(wake_fd_, &one, sizeof one);
  ready_.notify_all();
  {
    // Connections being served end now (their blocking calls return).
    std::lock_guard<std::mutex> guard{mtx_};
    for (int fd : active_)
      ::shutdown(fd, SHUT_RDWR);
  }
  if (acceptor_.joinable())
    acceptor_.join();
  for (auto& w : workers_)
    w.join();
  for (auto& j : jobs_)
    ::close(j.fd);
  if (wake_fd_ >= 0)
    ::close(wake_fd_);
  SSL_CTX_free(server_ctx_);
  SSL_CTX_free(client_ctx_);
}

status egress_proxy::attach(const std::string& id, uint32_t host, uint32_t sandbox,
                            const network_policy& policy, const resolved_policy& resolved) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto it = sandboxes_.find(id); it != sandboxes_.end() && it->second->host == host) {
      std::lock_guard<std::mutex> g{it->second->mtx};
      it->second->policy = policy;
      it->second->resolved = resolved;
      return success();
    }
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return internal_error(errno_text("egress proxy: socket"));
  auto listener = std::make_shared<fd_closer>(fd);
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(443);
  sa.sin_addr.s_addr = htonl(host);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 64) != 0)
    return internal_error(errno_text("egress proxy: listen on " + ipv4_to_string(host) + ":443"));
  auto e = std::make_shared<sandbox_entry>();
  e->id = id;
  e->host = host;
  e->sandbox = sandbox;
  e->listener = std::move(listener);
  e->policy = policy;
  e->resolved = resolved;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    sandboxes_[id] = std::move(e);
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  return success();
}

void egress_proxy::detach(const std::string& id) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (sandboxes_.erase(id) == 0)
      return;
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void egress_proxy::accept_loop() {
  for (;;) {
    std::vector<std::shared_ptr<sandbox_entry>> entries;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stop_)
        return;
      for (auto& [_, e] : sandboxes_)
        entries.push_back(e);
    }
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    for (auto& e : entries)
      fds.push_back({e->listener->get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR)
      return;
    if (fds[0].revents) {
      uint64_t n;
      (void)!::read(wake_fd_, &n, sizeof n);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents)
        continue;
      auto& e = entries[i - 1];
      for (;;) {
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        int c = ::accept4(e->listener->get(), reinterpret_cast<sockaddr*>(&peer), &len,
                          SOCK_CLOEXEC);
        if (c < 0)
          break;
        // Only the sandbox itself, and only so many connections at once.
        if (ntohl(peer.sin_addr.s_addr) != e->sandbox || e->open.load() >= config_.per_sandbox) {
          ::close(c);
          continue;
        }
        std::lock_guard<std::mutex> guard{mtx_};
        if (jobs_.size() >= config_.queue) {
          ::close(c);
          continue;
        }
        ++e->open;
        jobs_.push_back({e, c});
        ready_.notify_one();
      }
    }
  }
}

void egress_proxy::work_loop() {
  for (;;) {
    job j;
    {
      std::unique_lock<std::mutex> lock{mtx_};
      ready_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_)
        return;
      j = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (track(j.fd)) {
      serve(j);
      untrack(j.fd);
    }
    ::close(j.fd);
    --j.entry->open;
  }
}

bool egress_proxy::track(int fd) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (stop_)
    return false;
  active_.insert(fd);
  return true;
}

void egress_proxy::untrack(int fd) {
  std::lock_guard<std::mutex> guard{mtx_};
  active_.erase(fd);
}

void egress_proxy::serve(const job& j) {
  auto& e = *j.entry;
  network_policy policy;
  resolved_policy resolved;
  {
    std::lock_guard<std::mutex> g{e.mtx};
    policy = e.policy;
    resolved = e.resolved;
  }
  set_timeouts(j.fd);
  sockaddr_in orig{};
  socklen_t len = sizeof orig;
  if (::getsockopt(j.fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len) != 0)
    return;
  uint32_t dst = ntohl(orig.sin_addr.s_addr);
  uint16_t port = ntohs(orig.sin_port);
  // What the forward chain would have decided, and never the host itself.
  if (!permits(resolved, dst, false) || host_destination(dst)) {
    spdlog::debug("egress {}: {}:{} refused by its policy", e.id, ipv4_to_string(dst), port);
    return;
  }
  auto hello = peek_hello(j.fd);
  const egress_rule* rule =
    hello.kind == hello_kind::sni ? match_egress_rule(policy.rules, hello.sni) : nullptr;
  auto up = connect_to(dst, port);
  fd_closer upstream{up ? *up : -1};
  if (up && !track(upstream.get()))
    return;
  // Declared after `upstream`: untracked before it is closed.
  struct untrack_at_end {
    egress_proxy* p;
    int fd;
    ~untrack_at_end() {
      if (fd >= 0)
        p->untrack(fd);
    }
  } upstream_tracked{this, upstream.get()};
  if (!rule) {
    if (up)
      relay_bytes(j.fd, upstream.get(), relay_idle);
    return;
  }
  // The sandbox's TLS, answered with the CA's certificate for its name.
  auto leaf = config_.ca->leaf_for(hello.sni);
  if (!leaf)
    return;
  ssl_closer client{SSL_new(server_ctx_)};
  if (!client.ssl || SSL_use_certificate(client.ssl, leaf->cert.get()) != 1
      || SSL_use_PrivateKey(client.ssl, leaf->key.get()) != 1
      || SSL_set_fd(client.ssl, j.fd) != 1 || SSL_accept(client.ssl) != 1) {
    spdlog::debug("egress {}: TLS with the sandbox for {}: {}", e.id, hello.sni, ssl_error());
    return;
  }
  // The request head first (an answer to a client still sending is lost).
  std::string head;
  std::string buf(16 * 1024, '\0');
  size_t end = std::string::npos;
  auto head_until = std::chrono::steady_clock::now() + head_wait;
  while ((end = head.find("\r\n\r\n")) == std::string::npos) {
    if (std::chrono::steady_clock::now() > head_until)
      return;
    if (head.size() > max_head)
      return answer(client.ssl, 431, "Request Header Fields Too Large",
                    "the request head is larger than 64 KiB");
    int n = SSL_read(client.ssl, buf.data(), static_cast<int>(buf.size()));
    if (n <= 0) {
      int err = SSL_get_error(client.ssl, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        continue;
      return;
    }
    head.append(buf.data(), static_cast<size_t>(n));
  }
  if (!up)
    return answer(client.ssl, 502, "Bad Gateway",
                  "cannot reach " + hello.sni + ": " + up.error().message);
  // Ours to the destination, which must prove it is that name; then the
  // rule's headers with their secrets.
  ssl_closer server{SSL_new(client_ctx_)};
  if (!server.ssl || SSL_set_fd(server.ssl, upstream.get()) != 1
      || SSL_set_tlsext_host_name(server.ssl, hello.sni.c_str()) != 1
      || SSL_set1_host(server.ssl, hello.sni.c_str()) != 1 || SSL_connect(server.ssl) != 1) {
    auto why = server.ssl && SSL_get_verify_result(server.ssl) != X509_V_OK
                 ? std::string{X509_verify_cert_error_string(SSL_get_verify_result(server.ssl))}
                 : ssl_error();
    spdlog::info("egress {}: {} ({}) not verified: {}", e.id, hello.sni, ipv4_to_string(dst), why);
    return answer(client.ssl, 502, "Bad Gateway",
                  hello.sni + " at " + ipv4_to_string(dst) + " did not prove its name (" + why
                    + "); the rule's headers were not sent");
  }
  std::vector<std::pair<std::string, std::string>> set;
  for (auto& h : rule->headers) {
    auto value = resolve_placeholders(h.value, [&](const std::string& name) -> result<std::string> {
      if (!config_.secret)
        return bad_gateway("secrets are not reachable from this node");
      return config_.secret(policy.org, name);
    });
    if (!value)
      return answer(client.ssl, 502, "Bad Gateway",
                    "header " + h.name + ": " + value.error().message);
    if (value->find_first_of(std::string{"\r\n\0", 3}) != std::string::npos)
      return answer(client.ssl, 502, "Bad Gateway",
                    "header " + h.name + ": a secret's value holds a line break");
    set.emplace_back(h.name, std::move(*value));
  }
  auto rewritten = rewrite_request_head(std::string_view{head}.substr(0, end + 4), set);
  if (!rewritten)
    return answer(client.ssl, 400, "Bad Request", rewritten.error().message);
  auto rest = head.substr(end + 4);
  if (!write_all(server.ssl, rewritten->data(), rewritten->size())
      || (!rest.empty() && !write_all(server.ssl, rest.data(), rest.size())))
    return;
  relay_tls(client.ssl, server.ssl);
  SSL_shutdown(client.ssl);
}

} // namespace sandboxd
