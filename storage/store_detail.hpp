// Key encodings and helpers shared by the store's files (store_*.cpp);
// not part of its interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <rocksdb/iterator.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include "core/result.hpp"
#include "storage/record_codec.hpp"
#include "storage/store.hpp"

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

// A read that failed: 503, as every store read that fails (never an empty
// answer a caller would take for the truth).
inline failure read_failure(const rocksdb::Status& st) {
  return {503, "cannot read the store: " + st.ToString()};
}

// What a walk collected, or its failure: an iterator stops on an I/O error
// or corruption as on the end of its range, only its status tells them apart.
template <class T>
result<T> walked(const rocksdb::Iterator& it, T out) {
  if (!it.status().ok())
    return read_failure(it.status());
  return out;
}

// Walks `it` backwards from where it stands over keys with `prefix`,
// collecting the values `decode` reads and `keep` accepts, at most `limit`;
// `more` tells whether another one follows.
template <class T, class Decode, class Keep>
result<std::vector<T>> collect_backward(rocksdb::Iterator& it, const std::string& prefix,
                                        size_t limit, Decode decode, Keep keep, bool* more) {
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
  return walked(it, std::move(out));
}

// Index keys: the owner, a 0 separator (ids never contain it), then seq.
inline std::string index_key(const std::string& owner, uint64_t seq) {
  std::string k = owner;
  k.push_back('\0');
  k += be64(seq);
  return k;
}

// A record's bytes put into `batch`, or why they cannot be made.
template <class T>
status add_record(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* cf,
                  const std::string& key, const T& x) {
  auto bytes = encode_record(x);
  if (!bytes)
    return bytes.error();
  batch.Put(cf, key, *bytes);
  return success();
}

} // namespace sandboxd::store_detail

namespace sandboxd {

template <class T>
status store::put_record(rocksdb::ColumnFamilyHandle* cf, const std::string& key, const T& x) {
  rocksdb::WriteBatch batch;
  if (auto st = store_detail::add_record(batch, cf, key, x); !st)
    return st;
  return write(batch);
}

template <class T>
result<std::optional<T>> store::get_record(rocksdb::ColumnFamilyHandle* cf,
                                           const std::string& key) const {
  auto bytes = get(cf, key);
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::optional<T>{};
  return decode_record<T>(**bytes);
}

} // namespace sandboxd
