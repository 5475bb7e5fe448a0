// What every TLS server of sandboxd shares: the OpenSSL error text, HTTP/1.1
// as the one ALPN protocol, and a server context from an operator's files.
#pragma once

#include <memory>
#include <string>

#include <openssl/ssl.h>

#include "core/result.hpp"

namespace sandboxd {

/// The oldest error on this thread's OpenSSL queue, as text ("connection
/// closed" when there is none); clears the queue.
std::string ssl_error();

/// ALPN's wire form of HTTP/1.1, the one protocol sandboxd speaks over TLS.
inline constexpr unsigned char alpn_http1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

/// An ALPN select callback (SSL_CTX_set_alpn_select_cb) that picks HTTP/1.1,
/// or no protocol when the client offers none (it speaks HTTP/1.1 then).
int select_alpn_http1(SSL*, const unsigned char** out, unsigned char* outlen,
                      const unsigned char* in, unsigned int inlen, void*);

struct ssl_ctx_free {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_free>;

/// A TLS 1.2+ server context from a PEM certificate chain and its private
/// key (serve --tls-cert/--tls-key): 400 naming the file when either cannot
/// be read or they do not belong together.
result<ssl_ctx_ptr> server_tls_context(const std::string& cert_file, const std::string& key_file);

} // namespace sandboxd
