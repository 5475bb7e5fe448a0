#include "webhooks/signing.hpp"

#include "core/crypto.hpp"
#include "runtime/base64.hpp"

namespace sandboxd::webhooks {

std::string e2b_signature(const std::string& secret, const std::string& body) {
  auto b64 = base64::encode(sha256_raw(secret + body));
  while (!b64.empty() && b64.back() == '=')
    b64.pop_back();
  return b64;
}

std::string standard_signature(const std::string& secret, const std::string& msg_id,
                               int64_t timestamp, const std::string& body) {
  std::string key = secret;
  if (secret.rfind("whsec_", 0) == 0)
    if (auto decoded = base64::decode(secret.substr(6)))
      key = *decoded;
  auto payload = msg_id + "." + std::to_string(timestamp) + "." + body;
  return "v1," + base64::encode(hmac_sha256_raw(key, payload));
}

} // namespace sandboxd::webhooks
