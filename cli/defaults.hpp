// Default locations, fixed at build time so the binary finds its catalogue
// from any working directory.
#pragma once

#include <string>

namespace sandboxd::cli {

inline constexpr const char* default_template_cache = "/var/cache/sandboxd/templates";

inline std::string default_templates_file() {
  return SANDBOXD_SOURCE_DIR "/ops/templates.json";
}

inline std::string default_agents_file() {
  return SANDBOXD_SOURCE_DIR "/ops/agents.json";
}

} // namespace sandboxd::cli
