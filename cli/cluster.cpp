#include "cli/cluster.hpp"

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "runtime/cluster_credentials.hpp"

namespace sandboxd::cli {

status configure_cluster(caf::actor_system_config& cfg, const std::string& secret_file,
                         const std::string& dir) {
  auto secret = read_cluster_secret(secret_file);
  if (!secret)
    return secret.error();
  auto creds = derive_cluster_credentials(*secret, dir);
  if (!creds)
    return creds.error();
  cfg.load<caf::io::middleman>();
  cfg.load<caf::openssl::manager>();
  // The one certificate both sides present and trust (see cluster_credentials).
  cfg.openssl_certificate = creds->certificate;
  cfg.openssl_key = creds->key;
  cfg.openssl_cafile = creds->certificate;
  // A peer silent this long (a cut cable, a frozen host) is gone.
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(6)});
  return success();
}

} // namespace sandboxd::cli
