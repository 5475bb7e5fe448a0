// The envd data plane: what the E2B SDKs call on E2B_SANDBOX_URL. One
// listener for every sandbox, routed by the E2b-Sandbox-Id header (or a Host
// of the form 49983-<id>.<domain>), authorized by the sandbox's access token.
//
// Served with libmicrohttpd, one thread per connection, rather than Pistache:
// process output and directory watches are long-lived server streams, and
// uploads of 100 MB must stream to the sandbox; Pistache 0.0.5 can do
// neither (cross-thread chunked writes abort, request bodies are buffered).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "http/envd_defaults.hpp"
#include "http/terminal_tickets.hpp"
#include "actors/interfaces.hpp"
#include "core/result.hpp"
#include "http/connection_gate.hpp"

namespace sandboxd {
class store;
class volume_store;
} // namespace sandboxd

namespace sandboxd::http {

/// A server certificate chain and its private key, in PEM.
struct tls_pem {
  std::string cert, key;
};

struct envd_context {
  caf::actor_system& sys;
  registry_actor registry;
  std::shared_ptr<store> db;
  std::string data_dir; // the server's: uploaded template files live under it
  std::shared_ptr<envd_defaults> defaults = std::make_shared<envd_defaults>();
  // The volumes' filesystems (the volume-content API); null: no volumes.
  std::shared_ptr<volume_store> volumes;
  // Terminal tickets already used (each opens one terminal).
  std::shared_ptr<terminal_tickets> tickets = std::make_shared<terminal_tickets>();
};

/// Removes what uploads of template files interrupted by a stop or a crash
/// left in `data_dir` (their temporary files only); how many it removed.
result<size_t> remove_interrupted_template_uploads(const std::string& data_dir);

class envd_server {
public:
  /// Listens on "HOST:PORT", holding at most `limits` connections; with a
  /// PEM certificate chain and key, speaks HTTPS only. (Each connection has
  /// its own thread here, its handshake too: libmicrohttpd's own TLS cannot
  /// make one client wait for another's.)
  static result<std::unique_ptr<envd_server>> start(envd_context ctx, connection_limits limits,
                                                    const std::string& listen,
                                                    std::optional<tls_pem> tls = std::nullopt);
  ~envd_server();

private:
  envd_server() = default;
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace sandboxd::http
