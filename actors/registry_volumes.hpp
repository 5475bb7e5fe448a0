// The registry's volume work that runs on the executor (store reads and
// writes, a volume's files), kept apart from its actor code.
#pragma once

#include <string>
#include <vector>

#include "core/event.hpp"
#include "core/result.hpp"
#include "core/volume.hpp"

namespace sandboxd {

class store;
class volume_store;

/// Stores org's new volume `name` (409 on a name taken, 429 past `max`).
result<volume> make_volume(store& db, const std::string& org, const std::string& name,
                           size_t max, int64_t size_mb);
/// The mounts with each volume's id and size filled in from org's volumes
/// (400 naming a volume the org does not have).
result<std::vector<volume_mount>> resolve_volumes(const store& db, const std::string& org,
                                                  std::vector<volume_mount> mounts);
/// Forgets org's volume `id` and removes its files (404 when the org has
/// none such). Returns what it was.
result<volume> drop_volume(store& db, volume_store* files, const std::string& org,
                           const std::string& id);
/// The log's record of a volume's creation or deletion.
event volume_event(event_type type, const volume& v);

} // namespace sandboxd
