// A lifecycle event of org "org" on template "base" at `ts`, its TTL far
// off: what tests of the log's replay and retention append.
#pragma once

#include <cstdint>
#include <string>

#include "core/event.hpp"
#include "core/ids.hpp"

namespace sandboxd {

inline event lifecycle(event_type t, const std::string& sbx, int64_t ts) {
  event e;
  e.id = new_uuid();
  e.type = t;
  e.sandbox_id = sbx;
  e.team_id = "org";
  e.template_id = "base";
  e.timestamp_ms = ts;
  e.end_at_ms = ts + 1000000;
  return e;
}

} // namespace sandboxd
