// network.rules: parsing, matching, placeholders; the egress proxy's pure
// parts (ClientHello, request heads); the egress CA and the trust store.
#include <gtest/gtest.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/egress_rules.hpp"
#include "runtime/egress_ca.hpp"
#include "runtime/egress_proxy.hpp"

using namespace sandboxd;
namespace fs = std::filesystem;

namespace {

nlohmann::json rules_of(const std::string& text) { return nlohmann::json::parse(text); }

std::string error_of(const std::string& text) {
  auto r = parse_egress_rules(rules_of(text));
  return r ? "" : r.error().message;
}

// The first bytes a real TLS client sends for `sni` (OpenSSL over memory BIOs).
std::string client_hello_for(const char* sni) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  if (sni)
    SSL_set_tlsext_host_name(ssl, sni);
  SSL_connect(ssl); // wants to read: the hello is out
  char* data = nullptr;
  long n = BIO_get_mem_data(out, &data);
  std::string hello(data, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/sandboxd-egress-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

} // namespace

TEST(EgressRules, ParsesE2BsShapeAndMergesRulesInOrder) {
  auto r = parse_egress_rules(rules_of(R"({
    "API.Example.com": [{"transform": {"headers": {"Authorization": "Bearer ${e2b.secrets.openai}"}}},
                        {"transform": {"headers": {"authorization": "Bearer x", "X-Team": "t"}}}],
    "*.corp.example": [{}]})"));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  auto& api = (*r)[0].host == "api.example.com" ? (*r)[0] : (*r)[1];
  ASSERT_EQ(api.headers.size(), 2u);
  EXPECT_EQ(api.headers[0].name, "Authorization");
  EXPECT_EQ(api.headers[0].value, "Bearer x"); // the later rule wins
  EXPECT_TRUE(parse_egress_rules(nullptr));
  auto back = parse_egress_rules(egress_rules_json(*r));
  ASSERT_TRUE(back);
  EXPECT_EQ(decode_egress_rules(encode_egress_rules(*r)), *back);
}

TEST(EgressRules, RefusesWhatTheProxyCannotHonour) {
  EXPECT_NE(error_of(R"({"*": []})"), "");
  EXPECT_NE(error_of(R"({"10.0.0.1": []})"), "");
  EXPECT_NE(error_of(R"({"localhost": []})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": {}})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"headers": {"Host": "x"}}}]})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"headers": {"Content-Length": "1"}}}]})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"headers": {"X a": "1"}}}]})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"headers": {"X": "a\r\nEvil: 1"}}}]})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"headers": {"X": 1}}}]})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"body": "x"}}]})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"headers": {"X": "${e2b.secrets.}"}}}]})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"headers": {"X": "${HOME}"}}}]})"), "");
  EXPECT_NE(error_of(R"({"a.example.com": [{"transform": {"headers": {"X": "${e2b.secrets.a"}}}]})"), "");
  auto iam = error_of(R"({"a.example.com": [{"transform": {"headers": {"X": "${e2b.identity.tokens.aws}"}}}]})");
  EXPECT_NE(iam.find("workload identity"), std::string::npos) << iam;
  EXPECT_NE(error_of(R"({"a.example.com": [], "A.example.com": []})"), "");
  nlohmann::json many = nlohmann::json::object();
  for (int i = 0; i < 33; ++i)
    many["h" + std::to_string(i) + ".example.com"] = nlohmann::json::array();
  EXPECT_NE(error_of(many.dump()), "");
}

TEST(EgressRules, ExactBeatsWildcardAndTheLongestWildcardWins) {
  auto r = *parse_egress_rules(rules_of(R"({
    "*.example.com": [], "*.api.example.com": [], "api.example.com": []})"));
  EXPECT_EQ(match_egress_rule(r, "API.example.com")->host, "api.example.com");
  EXPECT_EQ(match_egress_rule(r, "v1.api.example.com")->host, "*.api.example.com");
  EXPECT_EQ(match_egress_rule(r, "a.b.example.com")->host, "*.example.com");
  EXPECT_EQ(match_egress_rule(r, "example.com"), nullptr); // a wildcard never matches the apex
  EXPECT_EQ(match_egress_rule(r, "badexample.com"), nullptr);
  EXPECT_EQ(match_egress_rule(r, "example.com.evil.net"), nullptr);
}

TEST(EgressRules, PlaceholdersResolvePerNameAndFailClosed) {
  auto r = *parse_egress_rules(rules_of(R"({"a.example.com": [{"transform": {"headers":
    {"A": "Bearer ${e2b.secrets.One}", "B": "${e2b.secrets.two}:${e2b.secrets.one}"}}}]})"));
  EXPECT_EQ(rule_secret_names(r), (std::vector<std::string>{"one", "two"}));
  auto lookup = [](const std::string& name) -> result<std::string> {
    if (name == "one")
      return std::string{"1"};
    return bad_gateway("secret '" + name + "' does not exist");
  };
  EXPECT_EQ(*resolve_placeholders("Bearer ${e2b.secrets.ONE}!", lookup), "Bearer 1!");
  EXPECT_EQ(*resolve_placeholders("plain", lookup), "plain");
  auto missing = resolve_placeholders("${e2b.secrets.two}", lookup);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().status, 502);
}

TEST(EgressProxy, ReadsTheServerNameOfARealClientHello) {
  auto hello = client_hello_for("API.Example.com");
  ASSERT_GT(hello.size(), 50u);
  auto h = parse_client_hello(hello);
  EXPECT_EQ(h.kind, hello_kind::sni);
  EXPECT_EQ(h.sni, "api.example.com");
  for (size_t cut : {size_t{0}, size_t{3}, size_t{5}, hello.size() - 1})
    EXPECT_EQ(parse_client_hello(hello.substr(0, cut)).kind, hello_kind::need_more) << cut;
  EXPECT_EQ(parse_client_hello(client_hello_for(nullptr)).kind, hello_kind::no_sni);
  EXPECT_EQ(parse_client_hello("GET / HTTP/1.1\r\n").kind, hello_kind::not_tls);
  // Lengths that point past the record never read past it.
  auto broken = hello;
  for (size_t i = 5; i < broken.size(); i += 7) {
    auto copy = broken;
    copy[i] = static_cast<char>(0xff);
    (void)parse_client_hello(copy);
  }
}

TEST(EgressProxy, RewritesOneRequestHead) {
  auto out = rewrite_request_head(
    "POST /v1 HTTP/1.1\r\nHost: a.example.com\r\nauthorization: mine\r\nConnection: keep-alive\r\n"
    "Content-Length: 2\r\n\r\n",
    {{"Authorization", "Bearer s3"}});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(*out, "POST /v1 HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 2\r\n"
                  "Authorization: Bearer s3\r\nConnection: close\r\n\r\n");
  auto ws = rewrite_request_head(
    "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", {});
  ASSERT_TRUE(ws);
  EXPECT_NE(ws->find("Connection: Upgrade"), std::string::npos);
  EXPECT_EQ(ws->find("Connection: close"), std::string::npos);
  EXPECT_FALSE(rewrite_request_head("garbage\r\n\r\n", {}));
  EXPECT_FALSE(rewrite_request_head("GET / HTTP/1.1\r\nnocolon\r\n\r\n", {}));
}

TEST(EgressCa, IsMadeOnceKeptPrivateAndSignsNamesOnly) {
  temp_dir dir;
  auto ca = egress_ca::open(dir.path / "ca");
  ASSERT_TRUE(ca) << ca.error().message;
  struct stat st{};
  ASSERT_EQ(::stat((dir.path / "ca" / "ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = egress_ca::open(dir.path / "ca");
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->pem(), (*ca)->pem());
  auto leaf = (*ca)->leaf_for("api.example.com");
  ASSERT_TRUE(leaf);
  // The leaf verifies against the CA for its name, and only for it.
  BIO* bio = BIO_new_mem_buf((*ca)->pem().data(), static_cast<int>((*ca)->pem().size()));
  X509* root = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, root);
  for (auto [name, ok] : {std::pair{"api.example.com", true}, std::pair{"evil.example.com", false}}) {
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf->cert.get(), nullptr);
    X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), name, 0);
    EXPECT_EQ(X509_verify_cert(ctx) == 1, ok) << name;
    X509_STORE_CTX_free(ctx);
  }
  X509_STORE_free(store);
  X509_free(root);
  EXPECT_FALSE((*ca)->leaf_for("a.example.com,DNS:evil.com"));
  EXPECT_FALSE((*ca)->leaf_for("10.0.0.1"));
}

TEST(EgressCa, JoinsTheSandboxTrustStoreOnceAndStaysInItsRoot) {
  temp_dir dir;
  auto root = dir.path / "root";
  fs::create_directories(root / "etc/ssl/certs");
  std::ofstream(root / "etc/ssl/certs/ca-certificates.crt") << "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----";
  std::string pem = "-----BEGIN CERTIFICATE-----\nOURS\n-----END CERTIFICATE-----\n";
  ASSERT_TRUE(trust_in_rootfs(root, pem));
  ASSERT_TRUE(trust_in_rootfs(root, pem));
  std::ifstream in(root / "etc/ssl/certs/ca-certificates.crt");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n" + pem);
  // A root whose certs directory is a symlink out of it: resolved inside,
  // where there is none, so nothing outside is read or written.
  auto outside = dir.path / "outside";
  fs::create_directories(outside);
  std::ofstream(outside / "ca-certificates.crt") << "host file\n";
  auto evil = dir.path / "evil";
  fs::create_directories(evil / "etc/ssl");
  fs::create_symlink(outside, evil / "etc/ssl/certs");
  EXPECT_TRUE(trust_in_rootfs(evil, pem));
  std::ifstream host(outside / "ca-certificates.crt");
  std::string host_text((std::istreambuf_iterator<char>(host)), {});
  EXPECT_EQ(host_text, "host file\n");
  // No trust store at all: left alone.
  EXPECT_TRUE(trust_in_rootfs(dir.path / "outside", pem));
}
