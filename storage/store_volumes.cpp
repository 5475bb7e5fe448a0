// Volumes' records (their files are runtime/volume_store's).
#include "storage/store.hpp"

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/store_detail.hpp"

namespace sandboxd {

using namespace store_detail;

status store::put_volume(const volume& v) {
  return put(volumes_, v.id, encode(v));
}

result<std::optional<volume>> store::find_volume(const std::string& id) const {
  auto text = get(volumes_, id);
  if (!text)
    return text.error();
  if (!*text)
    return std::optional<volume>{};
  return decode_volume(**text);
}

result<std::vector<volume>> store::volumes(const std::string& org_id) const {
  std::vector<volume> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, volumes_)};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (auto v = decode_volume(it->value().ToString()); v && (org_id.empty() || v->org_id == org_id))
      out.push_back(std::move(*v));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.created_ms < b.created_ms; });
  return walked(*it, std::move(out));
}

status store::delete_volume(const std::string& id) {
  rocksdb::WriteBatch batch;
  batch.Delete(volumes_, id);
  return write(batch);
}

} // namespace sandboxd
