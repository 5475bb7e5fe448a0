// The catalogue templates a server builds itself, in the background, when it
// starts without them (serve --build-templates background): ./ops/run on a
// fresh machine builds `base` and serves, the rest follow. One build at a
// time on one thread of its own (a build runs mmdebstrap for minutes), in
// catalogue order; how far each is shows in GET /templates, and a create for
// one not built yet is told (409) instead of waiting.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/result.hpp"
#include "runtime/templates.hpp"

namespace sandboxd {

struct catalogue_build_progress {
  enum class phase { waiting, building, ready, failed };
  phase state = phase::waiting;
  int64_t started_ms = 0; // building or done: when its build began
  size_t lines = 0;       // progress lines so far
  std::string last_line;  // the latest, at most 200 bytes
  std::string error;      // failed: why
};

/// E2B's buildStatus for a phase: waiting, building, ready, error.
const char* build_status_name(catalogue_build_progress::phase p);

class catalogue_builds {
public:
  /// Starts building every catalogue template of `cat` that is not built.
  /// (Their run steps reach npm as build_network::from_environment says.)
  static std::shared_ptr<catalogue_builds> start(std::shared_ptr<const template_catalog> cat);

  /// How template `name`'s build goes; nullopt when this builds no such
  /// template (it was built before the server started, or is no catalogue one).
  std::optional<catalogue_build_progress> progress(const std::string& name) const;

  /// Why a sandbox of `name` cannot be created yet: 409 while it waits or
  /// builds (saying how far it is), 503 when its build failed; nullopt once
  /// built or when this builds no such template.
  std::optional<failure> refusal(const std::string& name) const;

private:
  struct shared;
  std::shared_ptr<shared> s_;
};

} // namespace sandboxd
