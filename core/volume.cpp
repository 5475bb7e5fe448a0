#include "core/volume.hpp"

#include <set>

#include "core/crypto.hpp"
#include "core/ids.hpp"

namespace sandboxd {

namespace {

constexpr size_t volume_id_hex = 20;
constexpr size_t max_mount_path = 255;

// Where the sandbox's own machinery lives, or the system a mount would
// shadow: a volume over /etc or /usr would hide the template's files.
bool reserved_path(const std::string& p) {
  static const char* reserved[] = {"/proc", "/sys",  "/dev",   "/run/sandboxd", "/.sandboxd",
                                   "/etc",  "/usr",  "/bin",   "/sbin",         "/lib",
                                   "/lib32", "/lib64", "/libx32", "/boot"};
  for (auto r : reserved) {
    std::string root = r;
    if (p == root || p.rfind(root + "/", 0) == 0)
      return true;
  }
  return false;
}

// Whether one of the two paths is the other or holds it.
bool nests(const std::string& a, const std::string& b) {
  auto under = [](const std::string& x, const std::string& y) {
    return x == y || x.rfind(y + "/", 0) == 0;
  };
  return under(a, b) || under(b, a);
}

result<std::string> mount_path(const nlohmann::json& j) {
  if (!j.is_string())
    return bad_request("volumeMounts[].path must be a string");
  std::string p = j.get<std::string>();
  if (p.empty() || p[0] != '/')
    return bad_request("volumeMounts[].path must be an absolute path, got '" + p.substr(0, 64) + "'");
  if (p.size() > max_mount_path)
    return bad_request("volumeMounts[].path is longer than 255 bytes");
  if (p.find('\0') != std::string::npos)
    return bad_request("volumeMounts[].path holds a NUL byte");
  while (p.size() > 1 && p.back() == '/')
    p.pop_back();
  if (p == "/")
    return bad_request("a volume cannot be mounted over the sandbox's root");
  size_t start = 1;
  while (start <= p.size()) {
    auto end = p.find('/', start);
    if (end == std::string::npos)
      end = p.size();
    auto part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      return bad_request("volumeMounts[].path '" + p + "' must be normalised (no empty, '.' or '..' parts)");
    start = end + 1;
  }
  if (reserved_path(p))
    return bad_request("a volume cannot be mounted at " + p
                       + ": /proc, /sys, /dev, /etc, /usr, /bin, /sbin, /lib*, /boot and sandboxd's own paths are reserved");
  return p;
}

} // namespace

std::string new_volume_id() {
  return new_prefixed_id("vol-", volume_id_hex);
}

bool valid_volume_id(const std::string& id) {
  return is_prefixed_id(id, "vol-", volume_id_hex);
}

bool valid_volume_name(const std::string& name) {
  if (name.empty() || name.size() > 63 || name[0] == '-')
    return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
              || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

result<std::vector<volume_mount>> parse_volume_mounts(const nlohmann::json& body) {
  std::vector<volume_mount> out;
  if (!body.is_object() || !body.contains("volumeMounts") || body["volumeMounts"].is_null())
    return out;
  auto& list = body["volumeMounts"];
  if (!list.is_array())
    return bad_request("volumeMounts must be an array of {name, path}");
  if (list.size() > max_volume_mounts)
    return bad_request("at most " + std::to_string(max_volume_mounts) + " volumeMounts per sandbox");
  for (auto& m : list) {
    if (!m.is_object())
      return bad_request("volumeMounts[] must be objects {name, path}");
    auto name = m.value("name", nlohmann::json{});
    if (!name.is_string() || !valid_volume_name(name.get<std::string>()))
      return bad_request("volumeMounts[].name must be a volume's name (1-63 of a-z, A-Z, 0-9, _ and -)");
    auto path = mount_path(m.value("path", nlohmann::json{}));
    if (!path)
      return path.error();
    for (auto& other : out)
      if (nests(other.path, *path))
        return bad_request("volumeMounts paths " + other.path + " and " + *path + " overlap");
    out.push_back({name.get<std::string>(), *path, "", 0});
  }
  return out;
}

std::string volume_token(const std::string& secret, const volume& v) {
  return hmac_sha256_hex(secret, "volume:" + v.id + ":" + v.org_id);
}

bool volume_token_matches(const std::string& secret, const volume& v, const std::string& token) {
  return secure_equals(volume_token(secret, v), token);
}

nlohmann::json to_json(const volume& v) {
  return {{"volumeID", v.id}, {"name", v.name}};
}

nlohmann::json to_json_with_token(const volume& v, const std::string& secret) {
  auto j = to_json(v);
  j["token"] = volume_token(secret, v);
  return j;
}

std::string encode_mounts(const std::vector<volume_mount>& mounts) {
  auto arr = nlohmann::json::array();
  for (auto& m : mounts)
    arr.push_back({{"name", m.name}, {"path", m.path}, {"id", m.volume_id}, {"size_mb", m.size_mb}});
  return arr.dump();
}

std::vector<volume_mount> decode_mounts(const std::string& text) {
  std::vector<volume_mount> out;
  try {
    for (auto& m : nlohmann::json::parse(text))
      out.push_back({m.at("name"), m.at("path"), m.at("id"), m.value("size_mb", int64_t{0})});
  } catch (const std::exception&) {
    return {};
  }
  return out;
}

nlohmann::json mounts_json(const std::vector<volume_mount>& mounts) {
  auto arr = nlohmann::json::array();
  for (auto& m : mounts)
    arr.push_back({{"name", m.name}, {"path", m.path}});
  return arr;
}

} // namespace sandboxd
