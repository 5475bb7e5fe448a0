// Webhook signatures, both schemes a receiver may verify.
#pragma once

#include <cstdint>
#include <string>

namespace sandboxd::webhooks {

/// E2B's documented scheme (not an HMAC): standard base64 of SHA-256 over
/// the secret followed by the raw body, trailing '=' removed — what E2B's
/// verification snippets compute (digest('base64').replace(/=+$/, '')).
std::string e2b_signature(const std::string& secret, const std::string& body);

/// Standard Webhooks: "v1," + base64 of HMAC-SHA256 over "id.timestamp.body".
/// The key is the decoded rest of a "whsec_<base64>" secret, else the
/// secret's own bytes.
std::string standard_signature(const std::string& secret, const std::string& msg_id,
                               int64_t timestamp, const std::string& body);

} // namespace sandboxd::webhooks
