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

result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& flag,
                                                         const std::string& text) {
  auto colon = text.rfind(':');
  auto bad = [&] { return bad_request(flag + " must be HOST:PORT, got '" + text + "'"); };
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()
      || text.size() - colon > 6)
    return bad();
  auto digits = text.substr(colon + 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos)
    return bad();
  auto port = std::stoi(digits);
  if (port <= 0 || port > 65535)
    return bad();
  return std::pair{text.substr(0, colon), static_cast<uint16_t>(port)};
}

} // namespace sandboxd::cli
