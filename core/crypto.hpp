// Hashes used for API keys and access tokens (OpenSSL; no hand-written crypto).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sandboxd {

/// Bytes as lowercase hex (2 characters per byte).
std::string hex_encode(std::string_view bytes);
/// The bytes of lowercase hex; nullopt for an odd length or another character.
std::optional<std::string> hex_decode(std::string_view hex);

/// SHA-256 of `data` as lowercase hex.
std::string sha256_hex(const std::string& data);

/// SHA-256 of `data`, the 32 raw bytes.
std::string sha256_raw(const std::string& data);

/// HMAC-SHA256(key, data), the 32 raw bytes.
std::string hmac_sha256_raw(const std::string& key, const std::string& data);

/// HMAC-SHA256(key, data) as lowercase hex.
std::string hmac_sha256_hex(const std::string& key, const std::string& data);

/// Constant-time comparison for secrets.
bool secure_equals(const std::string& a, const std::string& b);

/// AES-256-GCM under the 32-byte `key`, bound to `aad`: a random 12-byte
/// nonce, the ciphertext, the 16-byte tag, concatenated (raw bytes).
std::string aead_seal(const std::string& key, const std::string& aad, const std::string& plaintext);
/// The plaintext of aead_seal's output; nullopt when the key, the aad or a
/// byte differs (tampered, truncated, or sealed for another record).
std::optional<std::string> aead_open(const std::string& key, const std::string& aad,
                                     const std::string& sealed);

}  // namespace sandboxd

namespace sandboxd {

/// The envd access token of a sandbox: derived, never stored, so the log
/// holds no secret and every restart reproduces the same token.
inline std::string envd_access_token(const std::string& server_secret,
                                     const std::string& sandbox_id) {
  return hmac_sha256_hex(server_secret, "envd:" + sandbox_id).substr(0, 48);
}

/// What a port request of a sandbox created with allowPublicTraffic false
/// must carry (E2B-Traffic-Access-Token); derived like the envd token.
inline std::string traffic_access_token(const std::string& server_secret,
                                        const std::string& sandbox_id) {
  return hmac_sha256_hex(server_secret, "traffic:" + sandbox_id).substr(0, 48);
}

/// What lets a browser open a terminal in a sandbox (a WebSocket carries
/// no headers): "<expiry, unix seconds>.<nonce>.<hex HMAC>", for that
/// sandbox only, given by POST /sandboxes/:id/terminal to its org. The
/// nonce makes each one different, so that each can be used once.
inline std::string terminal_ticket(const std::string& server_secret, const std::string& sandbox_id,
                                   long long expires_s, const std::string& nonce) {
  auto head = std::to_string(expires_s) + "." + nonce;
  return head + "." + hmac_sha256_hex(server_secret, "terminal:" + sandbox_id + ":" + head);
}

} // namespace sandboxd
