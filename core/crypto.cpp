#include "core/crypto.hpp"

#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

namespace sandboxd {

std::string hex_encode(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2)
    return std::nullopt;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = val(hex[i]), lo = val(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

namespace {

std::string to_hex(const unsigned char* p, size_t n) {
  return hex_encode(std::string_view{reinterpret_cast<const char*>(p), n});
}

} // namespace

std::string sha256_hex(const std::string& data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return to_hex(md, sizeof md);
}

std::string sha256_raw(const std::string& data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return std::string(reinterpret_cast<char*>(md), sizeof md);
}

std::string hmac_sha256_raw(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string hmac_sha256_hex(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md,
       &len);
  return to_hex(md, len);
}

bool secure_equals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

constexpr size_t gcm_nonce = 12;
constexpr size_t gcm_tag = 16;

struct cipher_ctx {
  EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
  ~cipher_ctx() { EVP_CIPHER_CTX_free(p); }
};

} // namespace

std::string aead_seal(const std::string& key, const std::string& aad, const std::string& plaintext) {
  if (key.size() != 32)
    throw std::invalid_argument("aead_seal: the key must be 32 bytes");
  std::string out(gcm_nonce + plaintext.size() + gcm_tag, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(bytes, gcm_nonce) != 1)
    throw std::runtime_error("aead_seal: no random bytes");
  cipher_ctx c;
  int len = 0;
  auto k = reinterpret_cast<const unsigned char*>(key.data());
  if (!c.p || EVP_EncryptInit_ex(c.p, EVP_aes_256_gcm(), nullptr, k, bytes) != 1
      || EVP_EncryptUpdate(c.p, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                           static_cast<int>(aad.size())) != 1
      || EVP_EncryptUpdate(c.p, bytes + gcm_nonce, &len,
                           reinterpret_cast<const unsigned char*>(plaintext.data()),
                           static_cast<int>(plaintext.size())) != 1
      || EVP_EncryptFinal_ex(c.p, bytes + gcm_nonce + len, &len) != 1
      || EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_GET_TAG, gcm_tag,
                             bytes + gcm_nonce + plaintext.size()) != 1)
    throw std::runtime_error("aead_seal: encryption failed");
  return out;
}

std::optional<std::string> aead_open(const std::string& key, const std::string& aad,
                                     const std::string& sealed) {
  if (key.size() != 32 || sealed.size() < gcm_nonce + gcm_tag)
    return std::nullopt;
  auto* in = reinterpret_cast<const unsigned char*>(sealed.data());
  size_t n = sealed.size() - gcm_nonce - gcm_tag;
  std::string out(n, '\0');
  std::string tag = sealed.substr(gcm_nonce + n);
  cipher_ctx c;
  int len = 0;
  auto k = reinterpret_cast<const unsigned char*>(key.data());
  if (!c.p || EVP_DecryptInit_ex(c.p, EVP_aes_256_gcm(), nullptr, k, in) != 1
      || EVP_DecryptUpdate(c.p, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                           static_cast<int>(aad.size())) != 1
      || EVP_DecryptUpdate(c.p, reinterpret_cast<unsigned char*>(out.data()), &len,
                           in + gcm_nonce, static_cast<int>(n)) != 1
      || EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_TAG, gcm_tag, tag.data()) != 1
      || EVP_DecryptFinal_ex(c.p, reinterpret_cast<unsigned char*>(out.data()) + len, &len) != 1)
    return std::nullopt;
  return out;
}

} // namespace sandboxd
