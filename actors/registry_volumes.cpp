#include "actors/registry_volumes.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/clock.hpp"
#include "core/ids.hpp"
#include "runtime/volume_store.hpp"
#include "storage/store.hpp"

namespace sandboxd {

result<volume> make_volume(store& db, const std::string& org, const std::string& name,
                           size_t max, int64_t size_mb) {
  auto existing = db.volumes(org);
  if (!existing)
    return existing.error();
  for (auto& v : *existing)
    if (v.name == name)
      return conflict("a volume named " + name + " already exists");
  if (existing->size() >= max)
    return failure{429, "volume limit reached (" + std::to_string(max) + " volumes per org)"};
  volume v{new_volume_id(), org, name, now_ms(), size_mb};
  if (auto st = db.put_volume(v); !st)
    return st.error();
  return v;
}

result<std::vector<volume_mount>> resolve_volumes(const store& db, const std::string& org,
                                                  std::vector<volume_mount> mounts) {
  if (mounts.empty())
    return mounts;
  auto have = db.volumes(org);
  if (!have)
    return have.error();
  for (auto& m : mounts) {
    auto found = std::find_if(have->begin(), have->end(), [&](auto& v) { return v.name == m.name; });
    if (found == have->end())
      return bad_request("volume " + m.name + " does not exist (create it with POST /volumes)");
    m.volume_id = found->id;
    m.size_mb = found->size_mb;
  }
  return mounts;
}

result<volume> drop_volume(store& db, volume_store* files, const std::string& org,
                           const std::string& id) {
  auto v = db.find_volume(id);
  if (!v)
    return v.error();
  if (!*v || (*v)->org_id != org)
    return not_found("volume " + id + " not found");
  if (auto st = db.delete_volume(id); !st)
    return st.error();
  // Forgotten first: files left by a failed removal are garbage, never a
  // volume without its files.
  if (files)
    if (auto st = files->remove(id); !st)
      spdlog::warn("volume {} deleted, its files not removed: {}", id, st.error().message);
  return **v;
}

event volume_event(event_type type, const volume& v) {
  event e;
  e.id = new_uuid();
  e.type = type;
  e.timestamp_ms = now_ms();
  e.team_id = v.org_id;
  e.ext[event_ext::volume_id] = v.id;
  e.ext[event_ext::volume_name] = v.name;
  return e;
}

} // namespace sandboxd
