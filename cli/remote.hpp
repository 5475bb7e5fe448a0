// What the CLI client (`sandboxd sandbox ...`) speaks to a server, any
// server: the E2B API with a key, and envd with a sandbox's access token,
// over libcurl (https with the system's CAs, or --cacert / SSL_CERT_FILE).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace sandboxd::cli {

using json = nlohmann::json;

struct remote_config {
  std::string api_url;  // --api-url, E2B_API_URL
  std::string api_key;  // --api-key, E2B_API_KEY
  std::string envd_url; // --envd-url, E2B_SANDBOX_URL; else derived per sandbox
  std::string ca_file;  // --cacert, SSL_CERT_FILE; else the system's CAs
};

struct reply {
  long status = 0;
  std::string body;
  std::string next_token; // x-next-token: the next page of a list
};

/// A sandbox as envd needs it: where, and its access token.
struct envd_target {
  std::string id;
  std::string url;   // the envd base URL, no trailing slash
  std::string token; // envdAccessToken (may be empty)
};

class remote {
public:
  explicit remote(remote_config c) : c_(std::move(c)) {}
  const remote_config& config() const { return c_; }

  /// An API call with the key; `body` null: none. A non-2xx answer is its
  /// {code, message} as a failure. `next_token`: where a list's next page
  /// starts (empty: none).
  result<json> api(const std::string& method, const std::string& path, const json* body = nullptr,
                   std::string* next_token = nullptr);

  /// The sandbox's envd, from its detail (GET /sandboxes/:id).
  result<envd_target> target(const std::string& id);

  /// A request to envd; the reply whatever its status.
  result<reply> envd(const envd_target& t, const std::string& method, const std::string& path,
                     std::map<std::string, std::string> headers, const std::string& body,
                     const std::string& user);

  /// A streaming request to envd: `on_data` gets the answer's bytes as they
  /// come (false stops); the HTTP status.
  result<long> envd_stream(const envd_target& t, const std::string& path,
                           std::map<std::string, std::string> headers, const std::string& body,
                           const std::string& user,
                           const std::function<bool(std::string_view)>& on_data);

private:
  remote_config c_;
};

/// Letters, digits, '-' and '_' only (and at most 64): an id put in a URL
/// path as it is (no "../", no '/').
bool is_sandbox_id(const std::string& id);

/// The failure a non-2xx reply stands for: its JSON message when there is one.
failure failure_of(const reply& r);

} // namespace sandboxd::cli
