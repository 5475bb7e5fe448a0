// Wall-clock helpers: the event log and every API speak milliseconds since the
// Unix epoch internally and RFC 3339 with milliseconds (UTC) on the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sandboxd {

/// Milliseconds since the Unix epoch, from the system clock.
int64_t now_ms();

/// Tests only: now_ms() reads `source` instead (simulated time, e.g. CAF's
/// test scheduler's clock); nullptr gives the system clock back.
void set_now_source(int64_t (*source)());

/// "2026-11-23T03:49:00.123Z"
std::string to_rfc3339(int64_t ms);

/// Parses RFC 3339 timestamps ("...Z" or "+hh:mm" offsets, optional fraction).
std::optional<int64_t> parse_rfc3339(const std::string& s);

}  // namespace sandboxd
