#include "runtime/cluster_credentials.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/crypto.hpp"
#include "runtime/pem_files.hpp"

namespace sandboxd {

namespace {

template <class T, void (*Free)(T*)>
struct openssl_deleter {
  void operator()(T* p) const { Free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;

// Versioned labels: a change of derivation must change both key and name.
constexpr const char* key_label = "sandboxd cluster key v1";
constexpr const char* common_name = "sandboxd-cluster-v1";

result<pkey_ptr> derive_key(const std::string& secret) {
  auto seed = hmac_sha256_raw(secret, key_label);
  pkey_ptr key{EVP_PKEY_new_raw_private_key(
    EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size())};
  if (!key)
    return internal_error("cannot derive the cluster key (OpenSSL has no Ed25519)");
  return key;
}

// Every field fixed (serial, names, validity): Ed25519 signs
// deterministically, so the certificate is a function of the secret.
result<x509_ptr> make_certificate(EVP_PKEY* key) {
  x509_ptr cert{X509_new()};
  if (!cert)
    return internal_error("cannot make the cluster certificate");
  auto fail = [] { return internal_error("cannot make the cluster certificate"); };
  if (X509_set_version(cert.get(), 2) != 1
      || ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) != 1)
    return fail();
  auto name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0)
        != 1
      || X509_set_issuer_name(cert.get(), name) != 1)
    return fail();
  // 2020-01-01 to 2999-12-31: the secret, not a date, limits its life.
  if (ASN1_TIME_set_string_X509(X509_getm_notBefore(cert.get()), "20200101000000Z") != 1
      || ASN1_TIME_set_string_X509(X509_getm_notAfter(cert.get()), "29991231235959Z") != 1)
    return fail();
  if (X509_set_pubkey(cert.get(), key) != 1 || X509_sign(cert.get(), key, nullptr) <= 0)
    return fail();
  return cert;
}

} // namespace

result<std::string> read_cluster_secret(const std::string& secret_file) {
  struct stat st {};
  if (::stat(secret_file.c_str(), &st) != 0)
    return bad_request("cannot read the cluster secret " + secret_file + ": "
                       + std::strerror(errno));
  if (st.st_mode & 077)
    return failure{403, "the cluster secret " + secret_file
                          + " is readable by other users: chmod 600 it"};
  std::ifstream in(secret_file);
  std::string secret;
  std::getline(in, secret);
  while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' '))
    secret.pop_back();
  if (secret.size() < min_cluster_secret)
    return bad_request("the cluster secret in " + secret_file + " must be at least "
                       + std::to_string(min_cluster_secret)
                       + " characters (e.g. openssl rand -hex 32)");
  return secret;
}

result<std::string> cluster_certificate_pem(const std::string& secret) {
  auto key = derive_key(secret);
  if (!key)
    return key.error();
  auto cert = make_certificate(key->get());
  if (!cert)
    return cert.error();
  return certificate_pem(cert->get());
}

result<cluster_credentials> derive_cluster_credentials(const std::string& secret,
                                                       const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0)
    return internal_error("cannot make " + dir + ": "
                          + (ec ? ec.message() : std::string{std::strerror(errno)}));
  auto key = derive_key(secret);
  if (!key)
    return key.error();
  auto cert_pem = cluster_certificate_pem(secret);
  if (!cert_pem)
    return cert_pem.error();
  auto key_pem = private_key_pem(key->get());
  if (!key_pem)
    return key_pem.error();
  cluster_credentials out{dir + "/cluster-cert.pem", dir + "/cluster-key.pem"};
  if (auto s = write_file_atomically(out.key, *key_pem, 0600); !s)
    return s.error();
  if (auto s = write_file_atomically(out.certificate, *cert_pem, 0600); !s)
    return s.error();
  return out;
}

} // namespace sandboxd
