// The egress proxy: where a sandbox with network.rules has its outbound
// HTTPS (tcp/443) redirected (nftables `intercept` set, runtime/network.hpp).
// Per connection it reads the TLS ClientHello's server name:
//   - a name a rule matches: the proxy answers the TLS with a certificate
//     from the install's egress CA (which the sandbox trusts), opens its own
//     TLS to the original destination verifying the real certificate for
//     that name, sets the rule's headers on the request head (secrets
//     resolved here, on the host, at that moment) and relays the rest;
//   - anything else: bytes are relayed to the original destination untouched.
// Either way the sandbox's egress policy is checked first, as the forward
// chain would have (the proxy's own connections are the host's, which that
// chain does not see), and the host itself is never a destination.
// One request per intercepted connection: the upstream is asked to close
// after it (`Connection: close`), so no later request on the connection goes
// out without the rule's headers.
// Connections are served by a fixed pool of threads; each sandbox may hold a
// bounded number at once, and every read and write has a timeout.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/egress_rules.hpp"
#include "core/result.hpp"
#include "runtime/egress_ca.hpp"
#include "runtime/network.hpp"

typedef struct ssl_ctx_st SSL_CTX;

namespace sandboxd {

// ---- pure helpers (unit-tested) ---------------------------------------------

/// What the first bytes of a connection say.
enum class hello_kind {
  need_more, // a TLS ClientHello record, not complete yet
  not_tls,   // not a TLS handshake
  no_sni,    // a ClientHello without a server name (or spread over records)
  sni,       // a ClientHello naming `sni`
};

struct client_hello {
  hello_kind kind = hello_kind::need_more;
  std::string sni; // lower-cased
};

client_hello parse_client_hello(std::string_view bytes);

/// A request head ("GET / HTTP/1.1\r\n...\r\n\r\n") with `set` applied: each
/// header of the same name (any case) removed, then set; `Connection: close`
/// unless the request asks for an upgrade. 400 for a head that is not one.
result<std::string> rewrite_request_head(
  std::string_view head, const std::vector<std::pair<std::string, std::string>>& set);

// ---- the component ------------------------------------------------------------

struct egress_proxy_config {
  std::shared_ptr<egress_ca> ca;
  /// PEM certificates trusted for upstreams besides the system's store
  /// (a private CA of the operator's; the tests' own). Empty: none.
  std::string trust_file;
  size_t threads = 64;       // connections served at once, all sandboxes
  size_t per_sandbox = 8;    // connections one sandbox may hold at once
  size_t queue = 256;        // accepted connections waiting for a thread
  /// The current value of secret `name` of `org`; an error fails the request.
  std::function<result<std::string>(const std::string& org, const std::string& name)> secret;
};

class egress_proxy {
public:
  static result<std::shared_ptr<egress_proxy>> start(egress_proxy_config config);
  ~egress_proxy();
  egress_proxy(const egress_proxy&) = delete;
  egress_proxy& operator=(const egress_proxy&) = delete;

  /// Serves sandbox `id` (its veth's host address `host`, its own `sandbox`)
  /// from now on with this policy: listens on host:443, or swaps the policy
  /// of a listener already there.
  status attach(const std::string& id, uint32_t host, uint32_t sandbox,
                const network_policy& policy, const resolved_policy& resolved);
  /// Stops listening for `id` (connections already open run to their end).
  void detach(const std::string& id);

  const std::string& ca_pem() const { return config_.ca->pem(); }

  struct sandbox_entry; // internal
  struct job {
    std::shared_ptr<sandbox_entry> entry;
    int fd = -1;
  };

private:
  explicit egress_proxy(egress_proxy_config config);
  void accept_loop();
  void work_loop();
  void serve(const job& j);
  /// Whether the proxy is stopping; else `fd` is shut down if it stops.
  bool track(int fd);
  void untrack(int fd);

  egress_proxy_config config_;
  SSL_CTX* server_ctx_ = nullptr; // toward sandboxes
  SSL_CTX* client_ctx_ = nullptr; // toward upstreams
  int wake_fd_ = -1;              // eventfd: the listener set changed, or stop
  std::mutex mtx_;
  std::condition_variable ready_;
  std::map<std::string, std::shared_ptr<sandbox_entry>> sandboxes_;
  std::deque<job> jobs_;
  std::set<int> active_; // sockets of connections being served: shut down on stop
  bool stop_ = false;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

} // namespace sandboxd
