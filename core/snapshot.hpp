// A filesystem snapshot of a sandbox: its writable layer frozen into a
// read-only layer that new sandboxes (created with the snapshot as their
// template, or forked) stack on the template it came from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/inspect.hpp"

namespace sandboxd {

struct snapshot_info {
  std::string id;                  // 20 chars, like sandbox ids
  std::string org_id;
  std::string name;                // optional; the newest of a name wins
  std::string sandbox_id;          // taken from
  std::string template_id;         // the catalogue template underneath
  std::vector<std::string> layers; // host paths, topmost first
  // The node its layer was taken on, where sandboxes made from it run;
  // empty: the control node. A worker keeps its layers under its own data
  // dir: it finds them by the last component of these paths (the ids).
  std::string node;
  int64_t created_ms = 0;
  bool hidden = false;             // made for a fork, not listed
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_info& x) {
  return f(caf::meta::type_name("snapshot_info"), x.id, x.org_id, x.name, x.sandbox_id,
           x.template_id, x.layers, x.node, x.created_ms, x.hidden);
}

/// Whether `s` is a layer of a template defined in code (hidden, named
/// "build:<cache key>"): kept while the org keeps the template, never taken
/// for a fork's snapshot.
inline bool is_template_layer(const snapshot_info& s) {
  return s.hidden && s.name.rfind("build:", 0) == 0;
}

/// E2B's snapshot id: "<name>:default", or "<id>:default" without a name.
std::string public_id(const snapshot_info& s);

/// Whether `ref` (an id or name, with or without ":default") names `s`.
bool refers_to(const std::string& ref, const snapshot_info& s);

} // namespace sandboxd
