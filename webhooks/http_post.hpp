// One webhook POST over libcurl. Blocking: run it on a worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace sandboxd::webhooks {

struct post_result {
  int http_status = 0;        // 0 when no response came
  std::string error_class;    // "" on 2xx; http_error, timeout, transport_error, refused_address
  std::string error_message;
  int64_t duration_ms = 0;
  std::optional<int64_t> retry_after_s;
  bool ok() const { return error_class.empty(); }
};

/// Once per process, before any post.
void init_http_client();

/// Syntax only, no DNS: an absolute http(s) URL naming its host.
status validate_url(const std::string& url);

/// Where the URL leads (webhooks/address_policy.hpp): unless `allow_private`,
/// refuses a host that is, or resolves to, any non-public address, and
/// localhost / *.localhost and cloud metadata names without resolving them.
/// Blocking (getaddrinfo): call it off the HTTP threads.
status check_destination(const std::string& url, bool allow_private);

/// POSTs `body`. Unless `allow_private`, every address libcurl is about to
/// connect to passes the same policy (a name that resolves elsewhere now than
/// at registration gets nowhere: error_class refused_address). Redirects are
/// never followed (a 3xx is a failed attempt), only http and https are
/// spoken, and no proxy from the environment is used (it would resolve the
/// name where the policy cannot see).
post_result post(const std::string& url,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 const std::string& body, std::chrono::milliseconds timeout, bool allow_private);

} // namespace sandboxd::webhooks
