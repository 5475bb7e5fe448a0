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

/// http(s) only; link-local and cloud metadata hosts refused unless
/// `allow_private` (loopback and private ranges are allowed).
status validate_url(const std::string& url, bool allow_private);

/// POSTs `body`; refuses at connect time a link-local address the name
/// resolved to (so DNS cannot steer a delivery to a metadata service).
post_result post(const std::string& url,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 const std::string& body, std::chrono::milliseconds timeout, bool allow_private);

} // namespace sandboxd::webhooks
