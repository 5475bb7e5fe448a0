// Tests that must reach under the store's interface (to corrupt, drop or
// flush what it wrote) open its database raw, the store closed.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rocksdb/db.h>

namespace sandboxd {

/// Opens the database in `dir` with every column family it has and calls
/// `f(db, families by name)`; closes it after, whatever `f` asserted.
template <class F>
void with_raw_db(const std::string& dir, F f) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions{}, dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (auto& name : names)
    descs.emplace_back(name, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options{}, dir, descs, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db{raw};
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families;
  for (size_t i = 0; i < names.size(); ++i)
    families[names[i]] = handles[i];
  struct closer {
    rocksdb::DB* db;
    std::vector<rocksdb::ColumnFamilyHandle*>& handles;
    ~closer() {
      for (auto* h : handles)
        (void)db->DestroyColumnFamilyHandle(h);
    }
  } close_handles{db.get(), handles};
  f(db.get(), families);
}

} // namespace sandboxd
