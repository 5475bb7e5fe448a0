// The install's egress CA: the certificate authority the egress proxy signs
// its stand-in server certificates with when it opens a sandbox's HTTPS to a
// host that has network.rules. Its key stays on the host (<data>/egress-ca/,
// 0600); its certificate is added to each sandbox's trust store at boot.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/result.hpp"

namespace sandboxd {

using x509_ptr = std::shared_ptr<X509>;
using pkey_ptr = std::shared_ptr<EVP_PKEY>;

/// A leaf certificate and its key, ready for SSL_use_certificate.
struct leaf_cert {
  x509_ptr cert;
  pkey_ptr key;
};

class egress_ca {
public:
  /// Loads the CA from `dir`, or makes one there (EC P-256, 10 years).
  static result<std::shared_ptr<egress_ca>> open(const std::string& dir);

  /// The CA certificate, PEM.
  const std::string& pem() const { return pem_; }

  /// A certificate for `host` (a DNS name) signed by the CA: valid from an
  /// hour ago for 30 days, minted once a day per host; at most 512 kept.
  result<leaf_cert> leaf_for(const std::string& host);

private:
  pkey_ptr key_;      // the CA's
  x509_ptr cert_;     // the CA's
  pkey_ptr leaf_key_; // one key for every leaf, made at open
  std::string pem_;
  std::mutex mtx_;
  struct cached {
    leaf_cert leaf;
    std::chrono::steady_clock::time_point made;
  };
  std::map<std::string, cached> leaves_;
};

/// Adds `pem` to the sandbox's trust store (Debian's bundle,
/// etc/ssl/certs/ca-certificates.crt, which curl, OpenSSL and Python read)
/// unless it is there already. A root without that bundle is left as it is.
status trust_in_rootfs(const std::string& rootfs, const std::string& pem);

} // namespace sandboxd
