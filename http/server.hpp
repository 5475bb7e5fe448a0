// The API listener: Pistache in front of the route table, with auth,
// request size limits and JSON errors for every failure.
#pragma once

#include <memory>
#include <string>

#include "core/result.hpp"
#include "http/connection_gate.hpp"
#include "runtime/tls_common.hpp"

namespace sandboxd::http {

struct api_context;

class api_server {
public:
  /// Listens on "HOST:PORT" with `threads` HTTP workers, holding at most
  /// `limits` connections; with `tls`, speaks HTTPS only (see tls_front).
  static result<std::unique_ptr<api_server>>
  start(api_context& ctx, const std::string& listen, int threads,
        connection_limits limits = {}, ssl_ctx_ptr tls = nullptr);
  ~api_server();
  void stop();

private:
  api_server() = default;
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Splits "HOST:PORT"; 400-style failure when malformed.
result<std::pair<std::string, uint16_t>> parse_listen(const std::string& s);

} // namespace sandboxd::http
