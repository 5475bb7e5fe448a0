#include "core/secret.hpp"

#include "core/clock.hpp"
#include "core/crypto.hpp"
#include "core/ids.hpp"

namespace sandboxd {

namespace {

constexpr size_t secret_id_hex = 20;

std::string aad_of(const secret_record& rec, int64_t version) {
  return "secret:" + rec.id + ":" + std::to_string(version) + ":" + rec.org_id;
}

} // namespace

std::string new_secret_id() {
  return new_prefixed_id("sec_", secret_id_hex);
}

bool valid_secret_id(const std::string& id) {
  return is_prefixed_id(id, "sec_", secret_id_hex);
}

result<std::string> canonical_secret_name(const std::string& name) {
  std::string out;
  for (char c : name)
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  auto bad = [] {
    return bad_request("a secret's name is 1-128 of a-z, 0-9, '.', '_' and '-' (case is folded), "
                       "starting with a letter or digit, not with the reserved sec_");
  };
  if (out.empty() || out.size() > 128 || out.rfind("sec_", 0) == 0)
    return bad();
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
      return bad();
  }
  return out;
}

result<std::map<std::string, std::string>> parse_secret_metadata(const nlohmann::json& body) {
  std::map<std::string, std::string> out;
  if (!body.contains("metadata") || body["metadata"].is_null())
    return out;
  auto& m = body["metadata"];
  if (!m.is_object())
    return bad_request("metadata must be an object of strings");
  if (m.size() > 32)
    return bad_request("metadata holds at most 32 entries");
  size_t total = 0;
  for (auto& [k, v] : m.items()) {
    if (!v.is_string())
      return bad_request("metadata values must be strings");
    auto s = v.get<std::string>();
    if (k.size() > 128 || s.size() > 1024)
      return bad_request("metadata keys are at most 128 bytes, values at most 1024");
    total += k.size() + s.size();
    out[k] = s;
  }
  if (total > 8192)
    return bad_request("metadata is at most 8192 bytes in all");
  return out;
}

result<std::string> parse_secret_value(const nlohmann::json& body) {
  auto v = body.value("value", nlohmann::json{});
  if (!v.is_string())
    return bad_request("value must be a string");
  auto s = v.get<std::string>();
  if (s.empty() || s.size() > max_secret_value)
    return bad_request("value must be 1 to 65536 bytes");
  return s;
}

std::string secrets_key(const std::string& server_secret) {
  return hmac_sha256_raw(server_secret, "sandboxd secrets key v1");
}

secret_version seal_secret(const std::string& key, const secret_record& rec, int64_t version,
                           const std::string& value, int64_t now) {
  return {version, now, aead_seal(key, aad_of(rec, version), value)};
}

std::optional<std::string> open_secret(const std::string& key, const secret_record& rec) {
  for (auto& v : rec.versions)
    if (v.version == rec.current_version)
      return aead_open(key, aad_of(rec, v.version), v.sealed);
  return std::nullopt;
}

nlohmann::json to_json(const secret_record& s) {
  return {{"secretID", s.id},
          {"name", s.name},
          {"currentVersion", s.current_version},
          {"metadata", s.metadata},
          {"createdAt", to_rfc3339(s.created_ms)},
          {"updatedAt", to_rfc3339(s.updated_ms)}};
}

} // namespace sandboxd
