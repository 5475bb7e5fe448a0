// How the store writes its records (webhooks, deliveries, volumes, secrets,
// snapshots, templates and their builds and logs, sandbox output and metric
// rings, the retention checkpoint): the bytes CAF's binary serializer makes
// of the same `inspect` that carries each type between nodes. One
// description per type.
//
// A format byte leads. JSON text, which records were before, never starts
// with it, so the open-time upgrade (storage/store_upgrade.cpp) tells the two
// apart. The event log keeps its own frozen encoding (core/event.hpp): its
// hash chain is over those bytes.
//
// The layout is positional: a field added to, moved in or removed from a
// stored type's inspect (or a CAF whose binary form differs) changes what
// its records are, and every record already stored would stop decoding. So
// each type's layout is frozen by a test (record_codec_test
// LayoutsAreFrozen). Changing one takes a new format byte for that type,
// its old layout's reader kept beside the JSON ones (legacy_records), and
// the open-time upgrade rewriting its records, as format 1 did for JSON.
// Stored types hold no byte vectors: CAF 0.17 sizes those from the length
// it reads before checking it against the bytes there are.
//
// Decoding is total: bytes that are not a whole record of the type (short,
// trailing, a length past the end, an enumerator out of range, an id that is
// not one) give nullopt, never a partial record.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "core/result.hpp"
#include "core/sample.hpp"
#include "core/sandbox.hpp"
#include "core/secret.hpp"
#include "core/snapshot.hpp"
#include "core/user_template.hpp"
#include "core/volume.hpp"
#include "core/webhook.hpp"
#include "storage/store.hpp"

namespace sandboxd {

/// The first byte of every record this version writes.
inline constexpr char record_format_v1 = '\x01';

/// Whether `bytes` are in this version's form (else older, or not a record).
inline bool in_record_format(std::string_view bytes) {
  return !bytes.empty() && bytes.front() == record_format_v1;
}

// What a decoded record must hold beyond its layout; each stored type has
// one (storage/record_codec.cpp), so a type without one does not compile.
bool valid_record(const webhook& x);
bool valid_record(const delivery& x);
bool valid_record(const volume& x);
bool valid_record(const secret_record& x);
bool valid_record(const snapshot_info& x);
bool valid_record(const user_template& x);
bool valid_record(const template_build& x);
bool valid_record(const build_log_entry& x);
bool valid_record(const sandbox_record& x);
bool valid_record(const container_sample& x);
bool valid_record(const store::log_line& x);
bool valid_record(const store::checkpoint& x);
bool valid_record(const std::set<std::string>& x); // drained nodes

/// The stored bytes of `x`. Fails only for a type whose inspect refuses to
/// be written (none that is stored).
template <class T>
[[nodiscard]] result<std::string> encode_record(const T& x) {
  std::vector<char> buf{record_format_v1};
  caf::binary_serializer sink{nullptr, buf};
  auto copy = x; // CAF 0.17's inspectors take their argument mutable
  if (auto err = sink(copy))
    return internal_error("cannot encode a record: " + caf::to_string(err));
  return std::string{buf.begin(), buf.end()};
}

/// The record `bytes` hold; nullopt unless they are exactly one valid `T`.
template <class T>
[[nodiscard]] std::optional<T> decode_record(std::string_view bytes) {
  if (!in_record_format(bytes))
    return std::nullopt;
  caf::binary_deserializer source{nullptr, bytes.data() + 1, bytes.size() - 1};
  T out;
  try {
    if (source(out) || source.remaining() != 0 || !valid_record(out))
      return std::nullopt;
  } catch (const std::exception&) { // a length past the memory there is
    return std::nullopt;
  }
  return out;
}

} // namespace sandboxd
