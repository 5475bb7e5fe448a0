// The API's TLS front (http/tls_front) against a plain echo listener: bytes
// go both ways intact through a real handshake, the listener learns the
// client behind each loopback connection, a client reconnecting in a loop
// runs out of handshakes, and the operator's files are checked with the file
// named.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "http/tls_front.hpp"
#include "runtime/egress_ca.hpp"
#include "runtime/pem_files.hpp"

using namespace sandboxd;
using namespace sandboxd::http;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/sandboxd-tls-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A listening loopback socket on a port of the kernel's choosing.
int listen_loopback(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return fd;
}

uint16_t free_port() {
  uint16_t port = 0;
  int fd = listen_loopback(&port);
  ::close(fd);
  return port;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

struct fixture {
  temp_dir dir;
  std::string ca_pem;
  std::string cert, key;
  fixture() {
    auto ca = egress_ca::open(dir.path / "ca");
    EXPECT_TRUE(ca);
    ca_pem = (*ca)->pem();
    auto leaf = (*ca)->leaf_for("front.test");
    EXPECT_TRUE(leaf);
    cert = (dir.path / "server.pem").string();
    key = (dir.path / "server.key").string();
    write_text(cert, *certificate_pem(leaf->cert.get()));
    write_text(key, *private_key_pem(leaf->key.get()));
  }
};

// A TLS client that trusts `ca_pem`, connected and through its handshake;
// from `source` (a loopback address) when given.
SSL* tls_connect(SSL_CTX* ctx, uint16_t port, int* fd_out, const char* source = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (source) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      ::close(fd);
      return nullptr;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return nullptr;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "front.test");
  SSL_set1_host(ssl, "front.test");
  if (SSL_connect(ssl) != 1) {
    SSL_free(ssl);
    ::close(fd);
    return nullptr;
  }
  *fd_out = fd;
  return ssl;
}

// A client context that trusts the certificate in `ca_pem` only.
ssl_ctx_ptr trusting(const std::string& ca_pem) {
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_client_method())};
  BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca);
  X509_free(ca);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

} // namespace

TEST(ForwardedClients, NamesTheClientByPortUntilRemoved) {
  forwarded_clients f;
  EXPECT_FALSE(f.find(40000));
  f.add(40000, "203.0.113.7");
  EXPECT_EQ(f.find(40000), "203.0.113.7");
  f.remove(40000);
  EXPECT_FALSE(f.find(40000));
}

TEST(TlsFront, RelaysBothWaysAndNamesTheClient) {
  fixture fx;
  uint16_t inner_port = 0;
  int inner = listen_loopback(&inner_port);
  ASSERT_GE(inner, 0);
  auto clients = std::make_shared<forwarded_clients>();
  std::string seen_client;
  // The listener: echoes one connection until the client's half-close.
  std::thread echo([&] {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int c = ::accept(inner, reinterpret_cast<sockaddr*>(&peer), &len);
    if (c < 0)
      return;
    seen_client = clients->find(ntohs(peer.sin_port)).value_or("(none)");
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0)
        break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(c, buf + off, static_cast<size_t>(n - off));
        if (w <= 0)
          break;
        off += w;
      }
    }
    ::close(c);
  });
  auto ctx = server_tls_context(fx.cert, fx.key);
  ASSERT_TRUE(ctx) << ctx.error().message;
  auto port = free_port();
  auto front = tls_front::start("127.0.0.1:" + std::to_string(port), std::move(*ctx), inner_port,
                                clients, {});
  ASSERT_TRUE(front) << front.error().message;

  auto client_ctx = trusting(fx.ca_pem);
  int fd = -1;
  SSL* ssl = tls_connect(client_ctx.get(), port, &fd);
  ASSERT_NE(ssl, nullptr);
  // Many times what the front's buffers hold.
  std::string sent(1 << 20, '\0');
  for (size_t i = 0; i < sent.size(); ++i)
    sent[i] = static_cast<char>(i * 7 + i / 4096);
  // One piece at a time, its echo read back before the next (an SSL object
  // is not for two threads at once).
  std::string got;
  char buf[16384];
  for (size_t off = 0; off < sent.size();) {
    int n = SSL_write(ssl, sent.data() + off, static_cast<int>(std::min<size_t>(65536, sent.size() - off)));
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
    while (got.size() < off) {
      int r = SSL_read(ssl, buf, sizeof buf);
      ASSERT_GT(r, 0);
      got.append(buf, static_cast<size_t>(r));
    }
  }
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent);
  // close_notify: the listener sees the end of the request stream, closes,
  // and the client sees its end.
  SSL_shutdown(ssl);
  char byte;
  EXPECT_LE(SSL_read(ssl, &byte, 1), 0);
  echo.join();
  EXPECT_EQ(seen_client, "127.0.0.1");
  SSL_free(ssl);
  ::close(fd);
  (*front)->stop();
  ::close(inner);
}

// A client that hangs up and reconnects at once, over and over, keeps the
// front's one thread busy with key exchanges: past its burst it is refused
// at accept until time refills its budget, and another client's handshakes
// go on meanwhile.
TEST(TlsFront, AClientReconnectingInALoopRunsOutOfHandshakes) {
  fixture fx;
  uint16_t inner_port = 0;
  int inner = listen_loopback(&inner_port); // never accepts: handshakes are what counts
  ASSERT_GE(inner, 0);
  auto ctx = server_tls_context(fx.cert, fx.key);
  ASSERT_TRUE(ctx) << ctx.error().message;
  auto port = free_port();
  tls_front_limits limits;
  limits.handshake_burst = 3;
  limits.handshakes_per_second = 0.5;
  auto front = tls_front::start("127.0.0.1:" + std::to_string(port), std::move(*ctx), inner_port,
                                std::make_shared<forwarded_clients>(), limits);
  ASSERT_TRUE(front) << front.error().message;
  auto client_ctx = trusting(fx.ca_pem);
  // A refused client's hello meets a closed socket: EPIPE, not SIGPIPE.
  struct ignore_sigpipe {
    void (*before)(int) = std::signal(SIGPIPE, SIG_IGN);
    ~ignore_sigpipe() { std::signal(SIGPIPE, before); }
  } quiet;
  auto handshake = [&](const char* source) {
    int fd = -1;
    SSL* ssl = tls_connect(client_ctx.get(), port, &fd, source);
    if (!ssl)
      return false;
    SSL_free(ssl);
    ::close(fd);
    return true;
  };
  auto start = std::chrono::steady_clock::now();
  int done = 0;
  while (done < 50 && handshake("127.0.0.2"))
    ++done;
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The burst, and no more than what time refilled meanwhile; then refused
  // (a refusal costs the front no handshake).
  EXPECT_GE(done, 3);
  EXPECT_LE(done, 3 + static_cast<int>(took * 0.5) + 1) << "in " << took << " s";
  EXPECT_TRUE(handshake("127.0.0.1")); // another client is not held back
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_TRUE(handshake("127.0.0.2")); // time gave one back
  (*front)->stop();
  ::close(inner);
}

TEST(TlsFront, TheOperatorsFilesAreCheckedWithTheFileNamed) {
  fixture fx;
  auto missing = server_tls_context((fx.dir.path / "nope.pem").string(), fx.key);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().status, 400);
  EXPECT_NE(missing.error().message.find("--tls-cert " + (fx.dir.path / "nope.pem").string()),
            std::string::npos);
  fixture other;
  auto mismatched = server_tls_context(fx.cert, other.key);
  ASSERT_FALSE(mismatched);
  EXPECT_NE(mismatched.error().message.find("is not the key of --tls-cert"), std::string::npos)
    << mismatched.error().message;
}
