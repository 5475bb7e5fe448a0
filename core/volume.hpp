// Volumes (E2B's `/volumes`, SDK 2.18+): an org's named filesystem that
// outlives sandboxes. Each is an ext4 image of its own size under the data
// dir (runtime/volume_store.hpp), mounted read-write into the sandboxes that
// name it at create, and reached without a sandbox through the volume-content
// API on the envd listener. What a volume is, how its name, a mount and its
// content token are checked: pure functions here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/inspect.hpp"
#include "core/result.hpp"

namespace sandboxd {

struct volume {
  std::string id;     // "vol-" + 20 hex
  std::string org_id;
  std::string name;   // unique within the org
  int64_t created_ms = 0;
  int64_t size_mb = 0; // the filesystem's size: writes past it fail inside with ENOSPC
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, volume& x) {
  return f(caf::meta::type_name("volume"), x.id, x.org_id, x.name, x.created_ms, x.size_mb);
}

/// A new volume id: "vol-" + 20 lower-case hex.
std::string new_volume_id();
/// Exactly what new_volume_id makes: anything else never reaches a path.
bool valid_volume_id(const std::string& id);

/// 1-63 of [a-zA-Z0-9_-], not starting with '-' (E2B's volume names).
bool valid_volume_name(const std::string& name);

/// Where a volume is mounted in a sandbox (`volumeMounts` on create).
struct volume_mount {
  std::string name;      // as the client named it
  std::string path;      // absolute, normalised, inside the sandbox
  std::string volume_id; // resolved by the registry at create
  int64_t size_mb = 0;   // the volume's, resolved with it
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, volume_mount& x) {
  return f(caf::meta::type_name("volume_mount"), x.name, x.path, x.volume_id, x.size_mb);
}

/// At most this many mounts per sandbox.
constexpr size_t max_volume_mounts = 8;

/// The `volumeMounts` of a create body ([{name, path}]); absent → none. A
/// path must be absolute, at most 255 bytes, free of "." and ".." parts and
/// of NUL, and outside what the sandbox's own machinery owns ("/", /proc,
/// /sys, /dev, /run/sandboxd, /.sandboxd, /etc, /usr, /bin, /sbin, /lib*);
/// two mounts may not share a path or nest. Names are checked, not resolved
/// (400 on a malformed one). Trailing slashes are dropped.
result<std::vector<volume_mount>> parse_volume_mounts(const nlohmann::json& body);

/// The content token of a volume: hex HMAC-SHA256 under the server secret of
/// "volume:<id>:<org>" (ids hold no ':'). Sent as `Authorization: Bearer`.
std::string volume_token(const std::string& secret, const volume& v);
/// Whether `token` is that volume's token (constant time).
bool volume_token_matches(const std::string& secret, const volume& v, const std::string& token);

/// E2B's `Volume` {volumeID, name}.
nlohmann::json to_json(const volume& v);
/// E2B's `VolumeAndToken` {volumeID, name, token}.
nlohmann::json to_json_with_token(const volume& v, const std::string& secret);

/// The mounts as recorded on a sandbox (event ext "volumes": a JSON array of
/// {name, path, id}), and back; an undecodable record gives none.
std::string encode_mounts(const std::vector<volume_mount>& mounts);
std::vector<volume_mount> decode_mounts(const std::string& text);
/// E2B's `volumeMounts` of a sandbox: [{name, path}].
nlohmann::json mounts_json(const std::vector<volume_mount>& mounts);

} // namespace sandboxd
