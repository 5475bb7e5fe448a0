// Secrets (E2B's `/secrets`, SDK 2.43+): an org's named values, write-only.
// A value is accepted on create and update and never returned by any read:
// it is kept encrypted at rest (AES-256-GCM under a key derived from the
// install secret, bound to the secret's id, org and version), and what is
// logged or answered is its metadata only. Pure functions here; records live
// in the store (`secrets` column family).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/inspect.hpp"
#include "core/result.hpp"

namespace sandboxd {

struct secret_version {
  int64_t version = 0;
  int64_t created_ms = 0;
  std::string sealed; // aead_seal output
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, secret_version& x) {
  return f(caf::meta::type_name("secret_version"), x.version, x.created_ms,
           caf::meta::omittable(), x.sealed);
}

struct secret_record {
  std::string id; // "sec_" + 20 hex
  std::string org_id;
  std::string name; // lower-cased, unique in the org
  std::map<std::string, std::string> metadata;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  int64_t current_version = 0;
  std::vector<secret_version> versions; // oldest first; at most max_secret_versions
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, secret_record& x) {
  return f(caf::meta::type_name("secret_record"), x.id, x.org_id, x.name, x.metadata,
           x.created_ms, x.updated_ms, x.current_version, x.versions);
}

constexpr size_t max_secret_value = 64 * 1024;
constexpr size_t max_secret_versions = 16;
constexpr size_t max_secrets_per_org = 1000;

std::string new_secret_id();
bool valid_secret_id(const std::string& id);

/// The canonical (lower-cased) name when `name` is one: 1-128 of
/// [a-z0-9._-] once lower-cased, starting with a letter or digit, not with
/// the reserved "sec_" (placeholders `${e2b.secrets.<name>}` must hold it).
result<std::string> canonical_secret_name(const std::string& name);

/// E2B's SecretMetadata: at most 32 entries, keys ≤ 128 bytes, values ≤
/// 1024 bytes, ≤ 8192 bytes in all, strings only. Absent → empty.
result<std::map<std::string, std::string>> parse_secret_metadata(const nlohmann::json& body);

/// A value as a create or update carries it: a string of 1..64 KiB.
result<std::string> parse_secret_value(const nlohmann::json& body);

/// The key that seals every secret of this install (from the server secret).
std::string secrets_key(const std::string& server_secret);
/// Seals `value` as version `version` of `rec` (the aad binds id, org, version).
secret_version seal_secret(const std::string& key, const secret_record& rec, int64_t version,
                           const std::string& value, int64_t now_ms);
/// The current version's value; nullopt when it does not open.
std::optional<std::string> open_secret(const std::string& key, const secret_record& rec);

/// E2B's Secret: {secretID, name, currentVersion, metadata, createdAt,
/// updatedAt}. Never the value.
nlohmann::json to_json(const secret_record& s);

} // namespace sandboxd
