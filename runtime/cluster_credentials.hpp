// The cluster's TLS identity, derived from the cluster secret alone: an
// Ed25519 key seeded by HMAC(secret) and a self-signed certificate whose
// every field is fixed, so every node holding the secret derives the same
// bytes. Each node trusts exactly that certificate (CAF's openssl module
// then requires it of both peers): a node without the secret fails the
// handshake before any CAF message is read.
#pragma once

#include <string>

#include "core/result.hpp"

namespace sandboxd {

struct cluster_credentials {
  std::string certificate; // PEM file: the certificate, also the one trusted
  std::string key;         // PEM file (0600): its private key
};

/// A secret must be at least this long (it is the cluster's only key).
constexpr size_t min_cluster_secret = 32;

/// Reads the secret from `secret_file` (first line; 400 when shorter than
/// min_cluster_secret, 403 when the file is readable by others).
[[nodiscard]] result<std::string> read_cluster_secret(const std::string& secret_file);

/// Writes the certificate and key derived from `secret` into `dir` (made
/// 0700); the same secret always gives the same files.
[[nodiscard]] result<cluster_credentials> derive_cluster_credentials(const std::string& secret,
                                                                     const std::string& dir);

/// The PEM text of the certificate `secret` derives (for tests).
[[nodiscard]] result<std::string> cluster_certificate_pem(const std::string& secret);

} // namespace sandboxd
