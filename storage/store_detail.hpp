// Key encodings and helpers shared by the store's files (store_*.cpp);
// not part of its interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <rocksdb/iterator.h>
#include <rocksdb/slice.h>
#include <spdlog/spdlog.h>

#include "core/result.hpp"

namespace sandboxd::store_detail {

inline std::string be64(uint64_t x) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(x & 0xff);
    x >>= 8;
  }
  return out;
}

inline uint64_t from_be64(const rocksdb::Slice& s) {
  uint64_t x = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i)
    x = (x << 8) | static_cast<uint8_t>(s[i]);
  return x;
}

// Walks `it` backwards from where it stands over keys with `prefix`,
// collecting the values `decode` reads and `keep` accepts, at most `limit`;
// `more` tells whether another one follows.
template <class T, class Decode, class Keep>
std::vector<T> collect_backward(rocksdb::Iterator& it, const std::string& prefix, size_t limit,
                                Decode decode, Keep keep, bool* more) {
  std::vector<T> out;
  for (; it.Valid() && it.key().starts_with(prefix); it.Prev()) {
    std::optional<T> v = decode(it.value().ToString());
    if (!v || !keep(*v))
      continue;
    if (out.size() == limit) {
      if (more)
        *more = true;
      break;
    }
    out.push_back(std::move(*v));
  }
  return out;
}

// Index keys: the owner, a 0 separator (ids never contain it), then seq.
inline std::string index_key(const std::string& owner, uint64_t seq) {
  std::string k = owner;
  k.push_back('\0');
  k += be64(seq);
  return k;
}

// For readers whose callers take absent for an answer (listings, template
// lookups): an unreadable value is logged, then read as absent.
inline std::optional<std::string> readable(result<std::optional<std::string>> got,
                                    const std::string& what) {
  if (got)
    return std::move(*got);
  spdlog::error("store: {} is unreadable: {}", what, got.error().message);
  return std::nullopt;
}

} // namespace sandboxd::store_detail
