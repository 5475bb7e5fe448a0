// The route table of the API listener. http/openapi.yaml documents exactly
// these routes; a unit test holds the two together.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "http/request.hpp"

namespace caf {
class actor_system;
} // namespace caf

namespace sandboxd {
class store;
} // namespace sandboxd

namespace sandboxd::http {

struct api_context;

using route_handler = void (*)(api_context&, request&);

struct route {
  std::string method;   // "GET", "POST", ...
  std::string pattern;  // "/sandboxes/:id/pause"
  route_handler handler;
  bool needs_auth = true;
};

/// The E2B control plane and the SandBase additions.
const std::vector<route>& control_plane_routes();

/// Matches `path` against `pattern`, filling `params` on success.
bool match_route(const std::string& pattern, const std::string& path,
                 std::map<std::string, std::string>& params);

} // namespace sandboxd::http
