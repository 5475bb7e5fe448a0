// Test-only: flips one byte of a stored event, as an attacker editing the
// database would, so the e2e suite can show `sandboxd audit verify` naming
// it. Flips the first character of the event's sandbox id: the bytes still
// decode, only the hash no longer matches. Usage: tamper_event DBDIR SEQ
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <rocksdb/db.h>

#include "core/event.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tamper_event DBDIR SEQ\n");
    return 2;
  }
  uint64_t seq = std::strtoull(argv[2], nullptr, 10);
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i, seq >>= 8)
    key[i] = static_cast<char>(seq & 0xff);
  std::vector<std::string> names;
  rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions{}, argv[1], &names);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (auto& name : names)
    descs.emplace_back(name, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::Open(rocksdb::Options{}, argv[1], descs, &handles, &db).ok())
    return 1;
  auto* events = handles[std::find(names.begin(), names.end(), "events") - names.begin()];
  std::string value;
  int rc = 1;
  if (db->Get({}, events, key, &value).ok()) {
    auto e = sandboxd::decode_event(value);
    auto at = e ? value.find(e->sandbox_id) : std::string::npos;
    if (at != std::string::npos) {
      value[at] ^= 0x01;
      rc = db->Put({}, events, key, value).ok() ? 0 : 1;
      if (rc == 0)
        std::printf("%s\n", e->id.c_str());
    }
  }
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h);
  delete db;
  return rc;
}
