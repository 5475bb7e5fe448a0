// Orgs and API keys (stored as SHA-256 only).
#include "storage/store.hpp"

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/store_detail.hpp"
#include <mutex>

#include "core/crypto.hpp"
#include "core/ids.hpp"

namespace sandboxd {

using namespace store_detail;

result<std::string> store::ensure_org(const std::string& name) {
  if (name.empty())
    return bad_request("org name must not be empty");
  std::lock_guard<std::mutex> guard{append_mtx_};
  // Unreadable is not absent: a second id for the same org would split it.
  auto known = get(orgs_, name);
  if (!known)
    return known.error();
  if (*known)
    return **known;
  auto id = new_uuid();
  if (auto st = put(orgs_, name, id); !st)
    return st.error();
  return id;
}

result<std::string> store::create_key(const std::string& org_name) {
  auto org = ensure_org(org_name);
  if (!org)
    return org.error();
  auto key = "e2b_" + random_hex(20);
  if (auto st = put(keys_, sha256_hex(key), *org); !st)
    return st.error();
  return key;
}

result<std::optional<std::string>> store::org_of_key(const std::string& key) const {
  return get(keys_, sha256_hex(key));
}

result<bool> store::has_keys() const {
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, keys_)};
  it->SeekToFirst();
  // Unreadable is not "no keys": the bootstrap would make a new one.
  return walked(*it, it->Valid());
}

} // namespace sandboxd
