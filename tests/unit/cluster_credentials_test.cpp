// The cluster's TLS identity: a function of the secret alone, and a real
// handshake over CAF's openssl middleman that a node without the secret
// cannot complete.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include "runtime/cluster_credentials.hpp"

namespace sandboxd {
namespace {

const std::string secret_a(64, 'a');
const std::string secret_b(64, 'b');

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/sandboxd-creds-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream{path} << text;
  ::chmod(path.c_str(), mode);
}

TEST(ClusterCredentials, TheSecretAloneDeterminesTheCertificate) {
  auto a1 = cluster_certificate_pem(secret_a);
  auto a2 = cluster_certificate_pem(secret_a);
  auto b = cluster_certificate_pem(secret_b);
  ASSERT_TRUE(a1 && a2 && b);
  EXPECT_EQ(*a1, *a2);
  EXPECT_NE(*a1, *b);
  EXPECT_NE(a1->find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST(ClusterCredentials, FilesArePrivate) {
  temp_dir t;
  auto creds = derive_cluster_credentials(secret_a, t.path + "/cluster");
  ASSERT_TRUE(creds) << creds.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(creds->key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((t.path + "/cluster").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::ifstream in{creds->certificate};
  std::string text{std::istreambuf_iterator<char>{in}, {}};
  EXPECT_EQ(text, *cluster_certificate_pem(secret_a));
}

TEST(ClusterCredentials, SecretFileIsCheckedForLengthAndMode) {
  temp_dir t;
  auto path = t.path + "/secret";
  write_file(path, "short\n", 0600);
  auto r = read_cluster_secret(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400);
  write_file(path, secret_a + "\n", 0644);
  r = read_cluster_secret(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 403);
  ::chmod(path.c_str(), 0600);
  r = read_cluster_secret(path);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, secret_a);
  EXPECT_FALSE(read_cluster_secret(t.path + "/none"));
}

// One node's actor system over TLS keyed by `secret`.
struct tls_node {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  tls_node(const std::string& secret, const std::string& dir) {
    auto creds = derive_cluster_credentials(secret, dir);
    EXPECT_TRUE(creds);
    cfg.load<caf::io::middleman>();
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = creds->certificate;
    cfg.openssl_key = creds->key;
    cfg.openssl_cafile = creds->certificate;
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

TEST(ClusterCredentials, OnlyANodeWithTheSecretCompletesTheHandshake) {
  temp_dir t;
  tls_node server{secret_a, t.path + "/server"};
  auto echo = server.sys->spawn([]() -> caf::behavior {
    return {[](int x) { return x + 1; }};
  });
  auto port = caf::openssl::publish(echo, 0, "127.0.0.1", true);
  ASSERT_TRUE(port) << server.sys->render(port.error());
  {
    tls_node peer{secret_a, t.path + "/peer"};
    auto remote = caf::openssl::remote_actor(*peer.sys, "127.0.0.1", *port);
    ASSERT_TRUE(remote) << peer.sys->render(remote.error());
    caf::scoped_actor self{*peer.sys};
    int answer = 0;
    self->request(*remote, std::chrono::seconds(10), 41).receive([&](int x) { answer = x; },
                                                                  [](caf::error&) {});
    EXPECT_EQ(answer, 42);
  }
  {
    tls_node intruder{secret_b, t.path + "/intruder"};
    auto remote = caf::openssl::remote_actor(*intruder.sys, "127.0.0.1", *port);
    EXPECT_FALSE(remote) << "a node with another secret reached the published actor";
  }
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace sandboxd
