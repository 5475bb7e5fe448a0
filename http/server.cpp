#include "http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/peer.h>
#include <spdlog/spdlog.h>

#include "core/ascii.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "http/tls_front.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

using namespace Pistache;

namespace {

// Limits of the API listener (see the guard below).
// A request line and headers: E2B's are well under 2 KiB.
constexpr size_t max_head = 16 * 1024;
// After a refusal, what is read and dropped so that the client, which is
// still sending, gets to read the answer instead of a reset (a 40 MiB body
// over loopback takes ~50 ms); past it the connection is reset.
constexpr size_t max_drain = 64u << 20;
// A request head must arrive within this of connecting (or of its first
// byte on a kept-alive connection), head and body within body_timeout.
constexpr auto head_timeout = std::chrono::seconds(15);
constexpr auto body_timeout = std::chrono::seconds(60);
// Pistache's keep-alive timeout also bounds a request in flight (see
// guard_input): it must outlast the longest route, e2a exec (610 s).
constexpr auto keepalive_timeout = std::chrono::minutes(15);
// Connections the kernel holds for the listener until its accept thread
// takes them. Pistache's 128 overflowed when ~400 connections arrived at
// once (tests/security ConnectionTotal: TcpExtListenOverflows went up on
// most runs); an overflow drops the SYN or the final ACK, which the client
// sees as a 1 s stall or more (SYN retransmission; data retransmitted until
// the SYN-ACK retransmission, backing off 1, 2, 4 s). Every connection is
// accepted, and judged by the gate only then, so the queue only needs to
// absorb a burst: the kernel caps it at net.core.somaxconn (4096 by
// default since Linux 5.4), which is also the default --max-connections.
constexpr int listen_backlog = 4096;

// Sets the backlog of the listening socket on `port`: Pistache 0.0.5's
// Endpoint::init drops Options::backlog (it calls Listener::init without
// it), and its listener keeps its socket to itself. listen() again on a
// listening socket only changes its backlog.
void set_listen_backlog(uint16_t port, int backlog) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
      continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0)
      continue;
    uint16_t bound = 0;
    if (addr.ss_family == AF_INET)
      bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    else if (addr.ss_family == AF_INET6)
      bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (bound == port && ::listen(fd, backlog) != 0)
      spdlog::warn("API listener: cannot set its backlog to {}: {}", backlog, std::strerror(errno));
  }
}

} // namespace

// -- responder ----------------------------------------------------------------

namespace {

// A response header named at run time: Pistache only writes typed headers,
// and its CUSTOM_HEADER needs a C++ identifier for a name.
class named_header : public Http::Header::Header {
public:
  named_header(std::string name, std::string value)
    : name_(std::move(name)), value_(std::move(value)) {}
  const char* name() const override { return name_.c_str(); }
#ifdef SAFE_HEADER_CAST
  uint64_t hash() const override { return Http::Header::detail::hash(name_.c_str()); }
#endif
  void parse(const std::string& data) override { value_ = data; }
  void write(std::ostream& os) const override { os << value_; }

private:
  std::string name_;
  std::string value_;
};

} // namespace

struct responder::impl {
  Http::ResponseWriter w;
  std::atomic<bool> sent{false};
  explicit impl(Http::ResponseWriter&& x) : w(std::move(x)) {}
};

responder::responder(Http::ResponseWriter&& w)
  : impl_(std::make_unique<impl>(std::move(w))) {}

responder::~responder() {
  // A handler that lost its reply still answers, never leaves a hung client.
  if (!impl_->sent)
    send_error(internal_error("the request was dropped without a reply"));
}

void responder::send_json(int status, const json& body) {
  send_json_text(status, body.dump());
}

void responder::send_json_with_headers(int status, const json& body,
                                       const std::map<std::string, std::string>& headers) {
  send_json_text(status, body.dump(), headers);
}

void responder::send_json_text(int status, const std::string& body,
                               const std::map<std::string, std::string>& headers) {
  if (impl_->sent.exchange(true))
    return;
  impl_->w.headers().add<Http::Header::ContentType>(MIME(Application, Json));
  for (auto& [k, v] : headers)
    impl_->w.headers().add(std::make_shared<named_header>(k, v));
  impl_->w.send(static_cast<Http::Code>(status), body);
}

void responder::send_text(int status, const std::string& body,
                          const std::string& content_type,
                          const std::map<std::string, std::string>& headers) {
  if (impl_->sent.exchange(true))
    return;
  impl_->w.headers().add(std::make_shared<named_header>("Content-Type", content_type));
  for (auto& [k, v] : headers)
    impl_->w.headers().add(std::make_shared<named_header>(k, v));
  impl_->w.send(static_cast<Http::Code>(status), body);
}

void responder::send_empty(int status) {
  if (impl_->sent.exchange(true))
    return;
  impl_->w.send(static_cast<Http::Code>(status));
}

void responder::send_error(const failure& f) {
  send_json(f.status, {{"code", f.status}, {"message", f.message}});
}

// -- dispatch -------------------------------------------------------------------

namespace {

// Method, path, query and headers of a request (its body not yet).
void copy_head(const Http::Request& in, request& req) {
  req.method = Http::methodString(in.method());
  req.path = in.resource();
  for (auto it = in.query().parameters_begin(); it != in.query().parameters_end(); ++it)
    req.query[url_decode(it->first)] = url_decode(it->second);
  for (auto& [name, raw] : in.headers().rawList())
    req.headers[ascii_lower(name)] = raw.value();
  for (auto& h : in.headers().list()) {
    std::ostringstream os;
    h->write(os);
    req.headers[ascii_lower(h->name())] = os.str();
  }
}

// The route of a request, and its caller's org when the route needs a key:
// the failure to answer otherwise (404, 405, 401).
result<const route*> route_and_auth(api_context& ctx, request& req) {
  const route* found = nullptr;
  bool path_known = false;
  for (auto& r : control_plane_routes()) {
    std::map<std::string, std::string> params;
    if (!match_route(r.pattern, req.path, params))
      continue;
    path_known = true;
    if (r.method == req.method) {
      found = &r;
      req.params = std::move(params);
      break;
    }
  }
  if (!found) {
    if (path_known)
      return failure{405, "method " + req.method + " is not allowed on " + req.path};
    return not_found("no route for " + req.method + " " + req.path);
  }
  if (found->needs_auth) {
    auto key = req.header("x-api-key");
    if (key.empty()) {
      auto auth = req.header("authorization");
      if (auth.rfind("Bearer ", 0) == 0)
        key = auth.substr(7);
    }
    if (key.empty())
      return failure{401, "missing API key: send X-API-Key or Authorization: Bearer"};
    auto org = ctx.db->org_of_key(key);
    if (!org)
      return org.error(); // 503: the key may well be valid
    if (!*org)
      return failure{401, "invalid API key"};
    req.org = **org;
  }
  return found;
}

// Follows a chunked body's framing, to know where it ends and how large it
// is (Pistache decodes it; this only counts).
class chunked_body {
public:
  // How many of `n` bytes belong to the body (done() once it has ended), or
  // a failure when it is malformed or larger than max_request_body.
  result<size_t> scan(const char* p, size_t n) {
    size_t i = 0;
    while (i < n && !done_) {
      char c = p[i];
      switch (at_) {
        case at::size:
          if (std::isxdigit(static_cast<unsigned char>(c))) {
            if (++digits_ > 8)
              return bad_request("malformed chunk size");
            size_ = size_ * 16 + static_cast<uint64_t>(std::stoi(std::string(1, c), nullptr, 16));
          } else if (c == ';') {
            at_ = at::ext;
            line_ = 0;
          } else if (c == '\n') {
            if (digits_ == 0)
              return bad_request("malformed chunk size");
            total_ += size_;
            if (total_ > max_request_body)
              return too_large();
            left_ = size_;
            at_ = size_ == 0 ? at::trailer : at::data;
            size_ = 0;
            digits_ = 0;
            line_ = 0;
          } else if (c != '\r') {
            return bad_request("malformed chunk size");
          }
          ++i;
          break;
        case at::ext: // chunk extensions: skipped, up to the size line's end
          if (c == '\n') {
            at_ = at::size;
            continue;
          }
          if (++line_ > 1024)
            return bad_request("chunk extension too long");
          ++i;
          break;
        case at::data: {
          auto take = std::min<uint64_t>(left_, n - i);
          i += take;
          left_ -= take;
          if (left_ == 0)
            at_ = at::data_end;
          break;
        }
        case at::data_end:
          if (c == '\n')
            at_ = at::size;
          else if (c != '\r')
            return bad_request("malformed chunk: no CRLF after its data");
          ++i;
          break;
        case at::trailer: // trailer lines until an empty one
          if (c == '\n') {
            done_ = line_ == 0;
            line_ = 0;
          } else if (c != '\r' && ++line_ > 8192) {
            return bad_request("chunk trailer too long");
          }
          ++i;
          break;
      }
    }
    return i;
  }

  bool done() const { return done_; }

  static failure too_large() {
    return {413, "request body is larger than " + std::to_string(max_request_body >> 20) + " MiB"};
  }

private:
  enum class at { size, ext, data, data_end, trailer } at_ = at::size;
  uint64_t size_ = 0, left_ = 0, total_ = 0;
  int digits_ = 0;
  size_t line_ = 0;
  bool done_ = false;
};

// How a request head frames its body: its Content-Length, or nullopt for a
// chunked body; a failure for what is refused before the body is read.
result<std::optional<size_t>> body_framing(const std::string& head) {
  std::optional<size_t> length;
  bool chunked = false;
  size_t line = head.find("\r\n");
  while (line != std::string::npos && line + 2 < head.size()) {
    auto start = line + 2;
    auto end = head.find("\r\n", start);
    if (end == std::string::npos || end == start)
      break;
    auto colon = head.find(':', start);
    if (colon != std::string::npos && colon < end) {
      auto name = ascii_lower(head.substr(start, colon - start));
      auto value = head.substr(colon + 1, end - colon - 1);
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t") + 1);
      if (name == "transfer-encoding") {
        if (ascii_lower(value) != "chunked")
          return failure{501, "unsupported Transfer-Encoding: " + value};
        chunked = true;
      } else if (name == "content-length") {
        if (value.empty() || value.size() > 18
            || value.find_first_not_of("0123456789") != std::string::npos
            || (length && *length != std::stoull(value)))
          return bad_request("malformed Content-Length");
        length = std::stoull(value);
      }
    }
    line = end;
  }
  if (chunked && length)
    return bad_request("both Content-Length and Transfer-Encoding");
  if (chunked)
    return std::optional<size_t>{};
  auto n = length.value_or(0);
  if (n > max_request_body)
    return chunked_body::too_large();
  return std::optional<size_t>{n};
}

// What the guard keeps per connection.
struct peer_guard {
  std::string head;      // the request head so far
  bool in_body = false;
  size_t body_left = 0;  // of a Content-Length body, still to come
  std::optional<chunked_body> chunked; // or a chunked body's framing
  bool dispatched = false; // Pistache has the whole request
  bool refused = false;  // answered, closing: input is dropped
  bool answered = false; // a response to a request may be in Pistache's write queue
  size_t drained = 0;
};

constexpr const char* guard_key = "sandboxd.guard";
constexpr const char* ticket_key = "sandboxd.ticket";

class api_handler : public Http::Handler {
public:
  HTTP_PROTOTYPE(api_handler)

  // Pistache clones the handler for each worker: the gate stays shared.
  api_handler(api_context* ctx, std::shared_ptr<connection_gate> gate,
              std::shared_ptr<const forwarded_clients> forwarded)
    : ctx_(ctx), gate_(std::move(gate)), forwarded_(std::move(forwarded)) {}

  // Pistache's own onConnection only sets up the parser (private there, so
  // done here as it does); then the gate. A connection past a limit is told
  // why and closed like any refused request (the client reads the answer,
  // then closes; the header timeout cuts one that does not); while many are
  // being told, the next ones are hung up on at once, so that a client
  // opening connections as fast as it can gets no more descriptors.
  void onConnection(const std::shared_ptr<Tcp::Peer>& peer) override {
    peer->putData(ParserData, std::make_shared<Http::RequestParser>(getMaxRequestSize()));
    auto client = client_of(*peer);
    auto verdict = gate_->admit(client);
    if (verdict == connection_gate::verdict::hang_up) {
      ::shutdown(peer->fd(), SHUT_RDWR); // the next read sees EOF: Pistache closes
      return;
    }
    peer->putData(ticket_key, std::make_shared<connection_ticket>(gate_, client, verdict));
    if (verdict == connection_gate::verdict::explain) {
      auto g = std::make_shared<peer_guard>();
      peer->putData(guard_key, g);
      refuse(peer, *g, failure{503, "too many connections: this server holds at most "
                                      "so many per client address and in all; close idle ones"});
    }
  }

  void onDisconnection(const std::shared_ptr<Tcp::Peer>& peer) override {
    if (auto t = std::static_pointer_cast<connection_ticket>(peer->tryGetData(ticket_key)))
      t->release();
  }

  void onRequest(const Http::Request& in, Http::ResponseWriter w) override {
    request req;
    req.out = std::make_shared<responder>(std::move(w));
    try {
      copy_head(in, req);
      auto found = route_and_auth(*ctx_, req);
      if (!found)
        return req.out->send_error(found.error());
      req.body = in.body();
      (*found)->handler(*ctx_, req);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", req.method, req.path, e.what());
      req.out->send_error(internal_error(e.what()));
    }
  }

private:
  // -- the guard in front of Pistache's parser ------------------------------------
  //
  // Pistache 0.0.5 buffers a whole request before a handler sees it, parses
  // a partial head again from its start on every 4 KiB read (quadratic: a
  // large head or a body after a 413 pins a core for minutes), keeps reading
  // a connection after answering 413 (the rest of the body parsed as new
  // requests), and times out a request in flight with its header timeout.
  // This replaces its onInput (a private virtual there, overridable): the
  // head is collected here (≤ max_head) and handed over in one piece; before
  // a byte of the body is read, a Content-Length over max_request_body or a
  // request its route would refuse (no or a bad key, no route) is answered;
  // a chunked body (the E2B JS SDK sends them) as soon as it grows past the
  // limit; after such an answer the connection is closed.
  void onInput(const char* data, size_t len, const std::shared_ptr<Tcp::Peer>& peer) override {
    auto g = std::static_pointer_cast<peer_guard>(peer->tryGetData(guard_key));
    if (!g) {
      g = std::make_shared<peer_guard>();
      peer->putData(guard_key, g);
    }
    if (g->refused) {
      g->drained += len;
      if (g->drained > max_drain)
        ::shutdown(peer->fd(), SHUT_RDWR); // the next read sees EOF: Pistache closes
      return;
    }
    auto parser = getParser(peer);
    if (!g->in_body) {
      if (g->head.empty() && peer->isIdle()) {
        // A new request on a kept-alive connection: its head is due within
        // head_timeout from now (Pistache times from the parser's reset).
        peer->setIdle(false);
        parser->reset();
      }
      auto before = g->head.size();
      g->head.append(data, std::min(len, max_head + 4 - before));
      auto end = g->head.find("\r\n\r\n", before < 3 ? 0 : before - 3);
      if (end == std::string::npos) {
        if (g->head.size() > max_head)
          refuse(peer, *g, failure{431, "request head is larger than "
                                          + std::to_string(max_head >> 10) + " KiB"});
        return;
      }
      auto head_size = end + 4;
      auto used = head_size - before;
      g->head.resize(head_size);
      auto framing = body_framing(g->head);
      if (!framing)
        return refuse(peer, *g, framing.error());
      g->dispatched = false;
      if (auto refused = feed(peer, *g, g->head.data(), head_size))
        return refuse(peer, *g, *refused);
      g->head.clear();
      if (*framing == size_t{0})
        return; // whatever follows in this read is dropped, as Pistache did
      // The head is parsed: refuse now what the route would refuse anyway.
      request req;
      copy_head(parser->request, req);
      if (auto found = route_and_auth(*ctx_, req); !found)
        return refuse(peer, *g, found.error());
      g->in_body = true;
      g->body_left = framing->value_or(0);
      if (!*framing)
        g->chunked.emplace();
      data += used;
      len -= used;
    }
    size_t n = 0;
    if (g->chunked) {
      auto took = g->chunked->scan(data, len);
      if (!took)
        return refuse(peer, *g, took.error());
      n = *took;
      if (g->chunked->done()) {
        g->chunked.reset();
        g->in_body = false;
      }
    } else {
      n = std::min(len, g->body_left);
      g->body_left -= n;
      if (g->body_left == 0)
        g->in_body = false;
    }
    // Bytes past the body are dropped, as Pistache did; so are the last
    // bytes of a chunked body (the final CRLF) once Pistache is done with it.
    if (n == 0 || g->dispatched)
      return;
    if (auto refused = feed(peer, *g, data, n))
      refuse(peer, *g, *refused);
  }

  // Pistache's own step, minus its buffering decisions: parse, and on a
  // whole request call onRequest. A failure when Pistache's parser refused
  // the request (malformed).
  std::optional<failure> feed(const std::shared_ptr<Tcp::Peer>& peer, peer_guard& g,
                              const char* data, size_t len) {
    auto parser = getParser(peer);
    auto& in = parser->request;
    try {
      if (!parser->feed(data, len))
        throw Http::HttpError(Http::Code::Request_Entity_Too_Large, "request too large");
      if (parser->parse() != Http::Private::State::Done)
        return std::nullopt;
      Http::ResponseWriter w(in.version(), transport(), this, peer);
      in.copyAddress(peer->address());
      auto connection = in.headers().tryGet<Http::Header::Connection>();
      w.headers().add<Http::Header::Connection>(
        connection ? connection->control() : Http::ConnectionControl::Close);
      peer->setIdle(false);
      g.dispatched = true;
      g.answered = true;
      onRequest(in, std::move(w));
      parser->reset();
      // Answered later, from another thread: until then Pistache must not
      // time the request out with its header timeout (its timer applies that
      // to a busy connection whose parser is reset); as idle, the keep-alive
      // timeout applies, which outlasts every route.
      peer->setIdle(true);
      return std::nullopt;
    } catch (const Http::HttpError& e) {
      parser->reset();
      return failure{e.code(), e.reason()};
    } catch (const std::exception& e) {
      parser->reset();
      return bad_request(e.what());
    }
  }

  // Answers `f`, then closes: the write side once the answer is out, the
  // read side after draining (see max_drain); the keep-alive timeout cuts a
  // client that neither finishes nor closes (Pistache marks a peer idle once
  // answered).
  //
  // While nothing else can be waiting to be written on the connection (it
  // has not had a request answered: a refusal on connect, or of its first
  // request), the answer is sent here at once, on the connection's own
  // worker thread. Pistache 0.0.5's queue cannot be trusted with it: a
  // queued write waits for an EPOLLOUT edge, and its Transport::onReady
  // handles an event that is readable *and* writable as readable only. A
  // client whose request arrives between the queued answer arming EPOLLOUT
  // and the worker's next epoll_wait (its request right after connect(), or
  // the rest of a body) has that edge eaten by the read; nothing else
  // triggers another, and the answer stayed queued until the keep-alive
  // timeout closed the connection (15 minutes): tests/security
  // test_hostile_clients.py ConnectionTotal saw the refusal of a full server
  // time out, about once in a thousand connections (the server side had read
  // the request, sent nothing, and was armed for EPOLLIN|EPOLLOUT).
  void refuse(const std::shared_ptr<Tcp::Peer>& peer, peer_guard& g, const failure& f) {
    g.refused = true;
    g.head.clear();
    g.head.shrink_to_fit();
    g.chunked.reset();
    getParser(peer)->reset();
    peer->setIdle(false);
    std::weak_ptr<Tcp::Peer> weak = peer;
    auto close_write = [weak] {
      if (auto p = weak.lock())
        ::shutdown(p->fd(), SHUT_WR);
    };
    auto body = json{{"code", f.status}, {"message", f.message}}.dump();
    if (!g.answered) {
      auto code = static_cast<Http::Code>(f.status);
      auto out = "HTTP/1.1 " + std::to_string(f.status) + " " + Http::codeString(code)
                 + "\r\nConnection: close\r\nContent-Type: application/json\r\n"
                   "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      size_t sent = 0;
      int err = 0;
      while (sent < out.size()) {
        auto n = ::send(peer->fd(), out.data() + sent, out.size() - sent,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          err = n < 0 ? errno : EPIPE;
          break;
        }
      }
      peer->setIdle(true); // as Pistache's ResponseWriter does once it sends
      if (sent == out.size() || (err != EAGAIN && err != EWOULDBLOCK)) {
        close_write(); // all sent, or the connection is gone
        return;
      }
      // A full send buffer (not seen on a connection that has sent
      // nothing): the rest goes through Pistache's queue.
      auto rest = out.substr(sent);
      auto size = rest.size();
      peer->send(RawBuffer(std::move(rest), size))
        .then([close_write](ssize_t) { close_write(); },
              [close_write](std::exception_ptr) { close_write(); });
      return;
    }
    Http::ResponseWriter w(Http::Version::Http11, transport(), this, peer);
    w.headers().add<Http::Header::Connection>(Http::ConnectionControl::Close);
    w.headers().add<Http::Header::ContentType>(MIME(Application, Json));
    // Pistache queues every write for its reactor: shut down only once sent.
    // Queued behind the answer to the previous request; the race above
    // remains for it (a client pipelining a request it will be refused).
    w.send(static_cast<Http::Code>(f.status), body)
      .then([close_write](ssize_t) { close_write(); },
            [close_write](std::exception_ptr) { close_write(); });
  }

  // The client's address, or behind the TLS front the one it forwards for.
  // The port is read from the socket: Pistache 0.0.5's Address has it
  // byte-swapped.
  std::string client_of(const Tcp::Peer& peer) const {
    sockaddr_in from{};
    socklen_t len = sizeof from;
    if (forwarded_ && ::getpeername(peer.fd(), reinterpret_cast<sockaddr*>(&from), &len) == 0
        && from.sin_family == AF_INET && from.sin_addr.s_addr == htonl(INADDR_LOOPBACK))
      if (auto real = forwarded_->find(ntohs(from.sin_port)))
        return *real;
    return client_key(peer.address().host());
  }

  api_context* ctx_;
  std::shared_ptr<connection_gate> gate_;
  std::shared_ptr<const forwarded_clients> forwarded_;
};

} // namespace

struct api_server::impl {
  std::unique_ptr<Http::Endpoint> endpoint;
  std::unique_ptr<tls_front> front; // with TLS: the endpoint listens on loopback behind it
};

result<std::pair<std::string, uint16_t>> parse_listen(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    return bad_request("listen address must be HOST:PORT, got '" + s + "'");
  auto port_str = s.substr(colon + 1);
  if (port_str.find_first_not_of("0123456789") != std::string::npos
      || port_str.size() > 5)
    return bad_request("bad port in '" + s + "'");
  auto port = std::stoi(port_str);
  if (port < 1 || port > 65535)
    return bad_request("bad port in '" + s + "'");
  return std::make_pair(s.substr(0, colon), static_cast<uint16_t>(port));
}

result<std::unique_ptr<api_server>>
api_server::start(api_context& ctx, const std::string& listen, int threads,
                  connection_limits limits, ssl_ctx_ptr tls) {
  auto hp = parse_listen(listen);
  if (!hp)
    return hp.error();
  std::unique_ptr<api_server> srv{new api_server};
  srv->impl_ = std::make_unique<impl>();
  std::shared_ptr<forwarded_clients> forwarded;
  if (tls)
    forwarded = std::make_shared<forwarded_clients>();
  try {
    // Behind the TLS front, on a loopback port of the kernel's choosing.
    Address addr = tls ? Address{"127.0.0.1", Port{0}} : Address{hp->first, Port{hp->second}};
    srv->impl_->endpoint = std::make_unique<Http::Endpoint>(addr);
    auto opts = Http::Endpoint::options()
                  .threads(threads)
                  .backlog(listen_backlog) // ignored by Pistache 0.0.5: see set_listen_backlog
                  .flags(Tcp::Options::ReuseAddr)
                  .maxRequestSize(max_head + max_request_body)
                  .maxResponseSize(64 * 1024 * 1024)
                  .headerTimeout(head_timeout)
                  .bodyTimeout(body_timeout)
                  .keepaliveTimeout(keepalive_timeout);
    srv->impl_->endpoint->init(opts);
    srv->impl_->endpoint->setHandler(
      Http::make_handler<api_handler>(&ctx, std::make_shared<connection_gate>(limits), forwarded));
    srv->impl_->endpoint->serveThreaded();
    set_listen_backlog(static_cast<uint16_t>(srv->impl_->endpoint->getPort()), listen_backlog);
  } catch (const std::exception& e) {
    return failure{500, "cannot listen on " + listen + ": " + e.what()};
  }
  if (tls) {
    tls_front_limits front_limits;
    front_limits.connections = limits.total + limits.refusing;
    auto front = tls_front::start(listen, std::move(tls),
                                  static_cast<uint16_t>(srv->impl_->endpoint->getPort()),
                                  forwarded, front_limits);
    if (!front)
      return front.error();
    srv->impl_->front = std::move(*front);
  }
  return srv;
}

void api_server::stop() {
  if (impl_ && impl_->front)
    impl_->front->stop();
  if (impl_ && impl_->endpoint) {
    impl_->endpoint->shutdown();
    impl_->endpoint.reset();
  }
}

api_server::~api_server() {
  stop();
}

} // namespace sandboxd::http
