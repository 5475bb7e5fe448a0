// CAF 0.17's openssl module calls SSL_read/SSL_write/SSL_accept/SSL_connect
// without clearing the thread's OpenSSL error queue first, which OpenSSL
// requires: SSL_get_error reports SSL_ERROR_SSL whenever the queue holds an
// error. All cluster connections share the middleman's one thread, so an
// error left by one peer (a worker killed mid-stream: "unexpected eof"; a
// node with the wrong secret failing its handshake) made the next harmless
// WANT_READ of every other peer look fatal, and the control node dropped
// healthy workers with it (measured: a second worker lost 250 ms after the
// first was killed). These definitions in the executable take precedence
// over libssl's (the binary exports them, see CMakeLists.txt): each clears
// the queue, then calls libssl's own.
#include <dlfcn.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class F>
F real(const char* name) {
  static_assert(sizeof(F) == sizeof(void*));
  void* p = ::dlsym(RTLD_NEXT, name);
  F f;
  __builtin_memcpy(&f, &p, sizeof f);
  return f;
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto next = real<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return next(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto next = real<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return next(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static auto next = real<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return next(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto next = real<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return next(ssl);
}

} // extern "C"
