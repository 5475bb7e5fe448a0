#include "runtime/tls_common.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

namespace sandboxd {

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e)
    return "connection closed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

int select_alpn_http1(SSL*, const unsigned char** out, unsigned char* outlen,
                      const unsigned char* in, unsigned int inlen, void*) {
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, alpn_http1, sizeof alpn_http1, in, inlen)
      == OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

result<ssl_ctx_ptr> server_tls_context(const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_server_method())};
  if (!ctx)
    return internal_error("TLS: " + ssl_error());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn_http1, nullptr);
  // An encrypted key is refused, never a passphrase asked for on a terminal.
  SSL_CTX_set_default_passwd_cb(ctx.get(), [](char*, int, int, void*) { return 0; });
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1)
    return bad_request("--tls-cert " + cert_file + ": " + ssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    auto e = ERR_peek_error();
    if (ERR_GET_LIB(e) != ERR_LIB_X509 || ERR_GET_REASON(e) != X509_R_KEY_VALUES_MISMATCH)
      return bad_request("--tls-key " + key_file + ": " + ssl_error()
                         + " (an encrypted key is not read: decrypt it with openssl pkey)");
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return bad_request("--tls-key " + key_file + " is not the key of --tls-cert " + cert_file + ": "
                       + ssl_error());
  return ctx;
}

} // namespace sandboxd
