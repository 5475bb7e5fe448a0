// PEM text of OpenSSL objects, and the files that hold it: what the cluster's
// credentials and the egress CA both write.
#pragma once

#include <string>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/result.hpp"

namespace sandboxd {

[[nodiscard]] result<std::string> certificate_pem(X509* cert);
[[nodiscard]] result<std::string> private_key_pem(EVP_PKEY* key);

/// The PEM text in `path` (at most 1 MiB): an operator's certificate or key.
[[nodiscard]] result<std::string> read_pem_file(const std::string& path);

/// Replaces `path` with `text` (mode `mode`): a temporary file beside it,
/// synced, then renamed over it; no symlink is followed.
status write_file_atomically(const std::string& path, const std::string& text, mode_t mode);

} // namespace sandboxd
