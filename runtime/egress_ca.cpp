#include "runtime/egress_ca.hpp"

#include "core/dns_name.hpp"
#include "runtime/pem_files.hpp"
#include "runtime/rootfs_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sandboxd {

namespace {

constexpr size_t max_leaves = 512;
constexpr auto leaf_refresh = std::chrono::hours(24);

pkey_ptr wrap(EVP_PKEY* k) { return pkey_ptr{k, EVP_PKEY_free}; }
x509_ptr wrap(X509* c) { return x509_ptr{c, X509_free}; }

pkey_ptr new_key() {
  return wrap(EVP_EC_gen("P-256"));
}

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext)
    return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

bool random_serial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    return false;
  bytes[0] &= 0x7f; // positive
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  bool ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  return ok;
}

// A certificate for `subject_cn` with `key`'s public half, valid from
// `from_s` to `to_s` seconds from now, signed by issuer_key (self if no issuer).
x509_ptr make_cert(const std::string& subject_cn, EVP_PKEY* key, X509* issuer,
                   EVP_PKEY* issuer_key, long from_s, long to_s) {
  auto cert = wrap(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1 || !random_serial(cert.get()))
    return nullptr;
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), from_s);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), to_s);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("sandboxd"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(subject_cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  if (X509_set_pubkey(cert.get(), key) != 1)
    return nullptr;
  X509* signer = issuer ? issuer : cert.get();
  bool ok = true;
  if (!issuer) {
    ok = add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")
         && add_ext(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign")
         && add_ext(cert.get(), signer, NID_subject_key_identifier, "hash");
  } else {
    auto san = "DNS:" + subject_cn;
    ok = add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE")
         && add_ext(cert.get(), signer, NID_key_usage, "critical,digitalSignature")
         && add_ext(cert.get(), signer, NID_ext_key_usage, "serverAuth")
         && add_ext(cert.get(), signer, NID_subject_alt_name, san.c_str())
         && add_ext(cert.get(), signer, NID_authority_key_identifier, "keyid");
  }
  if (!ok || X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0)
    return nullptr;
  return cert;
}

result<std::string> read_small(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return internal_error(errno_text("open " + path));
  std::string out(64 * 1024, '\0');
  ssize_t n = ::read(fd, out.data(), out.size());
  ::close(fd);
  if (n < 0)
    return internal_error(errno_text("read " + path));
  out.resize(static_cast<size_t>(n));
  return out;
}

} // namespace

result<std::shared_ptr<egress_ca>> egress_ca::open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0)
    return internal_error("cannot make " + dir + ": "
                          + (ec ? ec.message() : std::string{std::strerror(errno)}));
  auto ca = std::make_shared<egress_ca>();
  auto key_path = dir + "/ca.key";
  auto cert_path = dir + "/ca.pem";
  if (::access(key_path.c_str(), F_OK) == 0) {
    auto key_text = read_small(key_path);
    if (!key_text)
      return key_text.error();
    auto cert_text = read_small(cert_path);
    if (!cert_text)
      return cert_text.error();
    BIO* kb = BIO_new_mem_buf(key_text->data(), static_cast<int>(key_text->size()));
    ca->key_ = wrap(PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr));
    BIO_free(kb);
    BIO* cb = BIO_new_mem_buf(cert_text->data(), static_cast<int>(cert_text->size()));
    ca->cert_ = wrap(PEM_read_bio_X509(cb, nullptr, nullptr, nullptr));
    BIO_free(cb);
    if (!ca->key_ || !ca->cert_ || X509_check_private_key(ca->cert_.get(), ca->key_.get()) != 1)
      return internal_error("the egress CA in " + dir + " does not load: remove the directory"
                            " to make a new one (sandboxes then trust the new one from their"
                            " next boot)");
  } else {
    ca->key_ = new_key();
    if (!ca->key_)
      return internal_error("egress CA: cannot make a key");
    ca->cert_ = make_cert("sandboxd egress CA", ca->key_.get(), nullptr, ca->key_.get(),
                          -3600, 10L * 365 * 24 * 3600);
    if (!ca->cert_)
      return internal_error("egress CA: cannot make its certificate");
    auto key_text = private_key_pem(ca->key_.get());
    if (!key_text)
      return key_text.error();
    auto cert_text = certificate_pem(ca->cert_.get());
    if (!cert_text)
      return cert_text.error();
    if (auto st = write_file_atomically(cert_path, *cert_text, 0644); !st)
      return st.error();
    if (auto st = write_file_atomically(key_path, *key_text, 0600); !st)
      return st.error();
  }
  auto pem = certificate_pem(ca->cert_.get());
  if (!pem)
    return pem.error();
  ca->pem_ = std::move(*pem);
  ca->leaf_key_ = new_key();
  if (!ca->leaf_key_)
    return internal_error("egress CA: cannot make a key");
  return ca;
}

result<leaf_cert> egress_ca::leaf_for(const std::string& host) {
  // The name goes into the SAN's config text: a comma would add entries.
  if (!is_domain(host))
    return bad_request("not a DNS name: " + host.substr(0, 64));
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = std::chrono::steady_clock::now();
  if (auto it = leaves_.find(host); it != leaves_.end() && now - it->second.made < leaf_refresh)
    return it->second.leaf;
  auto cert = make_cert(host, leaf_key_.get(), cert_.get(), key_.get(), -3600, 30L * 24 * 3600);
  if (!cert)
    return internal_error("egress CA: cannot make a certificate for " + host);
  if (leaves_.size() >= max_leaves)
    leaves_.clear(); // rare: far more distinct rule hosts than any sandbox names
  leaf_cert leaf{cert, leaf_key_};
  leaves_[host] = {leaf, now};
  return leaf;
}

status trust_in_rootfs(const std::string& rootfs, const std::string& pem) {
  constexpr size_t max_bundle = 8 << 20;
  auto bundle = read_in_rootfs(rootfs, "etc/ssl/certs/ca-certificates.crt", max_bundle);
  if (!bundle)
    return bundle.error().status == 404 ? success() : status{bundle.error()};
  if (bundle->find(pem) != std::string::npos)
    return success();
  if (!bundle->empty() && bundle->back() != '\n')
    *bundle += '\n';
  return write_in_rootfs(rootfs, "etc/ssl/certs", "ca-certificates.crt", *bundle + pem);
}

} // namespace sandboxd
