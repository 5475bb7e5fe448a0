// Tests that must reach under the store's interface (to corrupt, drop or
// flush what it wrote) open its database raw, the store closed.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/table_properties.h>

#include "core/result.hpp"

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

// Flushes every column family of the store in `dir` (closed) to table
// files, then breaks the data of the `family`'s files (their first data
// block only: the index and footer stay whole, the store opens, a read fails).
inline void corrupt_family(const std::string& dir, const std::string& family) {
  std::vector<rocksdb::LiveFileMetaData> files;
  std::map<std::string, uint64_t> data_size; // by file name
  with_raw_db(dir, [&](rocksdb::DB* db, auto& families) {
    std::vector<rocksdb::ColumnFamilyHandle*> all;
    for (auto& [name, h] : families)
      all.push_back(h);
    ASSERT_TRUE(db->Flush(rocksdb::FlushOptions{}, all).ok());
    db->GetLiveFilesMetaData(&files);
    rocksdb::TablePropertiesCollection props;
    ASSERT_TRUE(db->GetPropertiesOfAllTables(families.at(family), &props).ok());
    for (auto& [path, p] : props)
      data_size[path.substr(path.rfind('/'))] = p->data_size;
  });
  int broken = 0;
  for (auto& f : files) {
    if (f.column_family_name != family)
      continue;
    auto path = dir + f.name; // name begins with '/'
    std::FILE* fp = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(fp, nullptr) << path;
    std::string junk(std::min<uint64_t>(64, data_size[f.name]), 'x');
    ASSERT_EQ(std::fwrite(junk.data(), 1, junk.size(), fp), junk.size());
    std::fclose(fp);
    broken += junk.empty() ? 0 : 1;
  }
  ASSERT_GT(broken, 0) << "no table file of " << family;
}

/// Whether `r` is the failure of a read the store could not do (503, as a
/// broken family gives), not an answer.
template <class T>
::testing::AssertionResult read_failed(const result<T>& r) {
  if (r)
    return ::testing::AssertionFailure() << "an answer, not a failure";
  if (r.error().status != 503)
    return ::testing::AssertionFailure() << r.error().status << " " << r.error().message;
  return ::testing::AssertionSuccess() << r.error().message;
}

} // namespace sandboxd
