// A record as the store reads it back: written by storage/record_codec.hpp,
// then read; nullopt when either step refuses it.
#pragma once

#include <optional>

#include "storage/record_codec.hpp"

namespace sandboxd {

template <class T>
std::optional<T> stored_copy(const T& x) {
  auto bytes = encode_record(x);
  if (!bytes)
    return std::nullopt;
  return decode_record<T>(*bytes);
}

} // namespace sandboxd
