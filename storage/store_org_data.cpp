// An org's volumes (records only: their files are runtime/volume_store's)
// and secrets (values sealed: core/secret.hpp).
#include "storage/store.hpp"

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/store_detail.hpp"

namespace sandboxd {

using namespace store_detail;

status store::put_volume(const volume& v) {
  return put_record(volumes_, v.id, v);
}

result<std::optional<volume>> store::find_volume(const std::string& id) const {
  return get_record<volume>(volumes_, id);
}

result<std::vector<volume>> store::volumes(const std::string& org_id) const {
  std::vector<volume> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, volumes_)};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (auto v = decode_record<volume>(it->value().ToStringView()); v && (org_id.empty() || v->org_id == org_id))
      out.push_back(std::move(*v));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.created_ms < b.created_ms; });
  return walked(*it, std::move(out));
}

status store::delete_volume(const std::string& id) {
  rocksdb::WriteBatch batch;
  batch.Delete(volumes_, id);
  return write(batch);
}

status store::put_secret(const secret_record& s) {
  return put_record(secrets_, s.id, s);
}

result<std::optional<secret_record>> store::find_secret(const std::string& org_id,
                                                        const std::string& ref) const {
  if (valid_secret_id(ref)) {
    auto s = get_record<secret_record>(secrets_, ref);
    if (s && *s && (*s)->org_id != org_id)
      return std::optional<secret_record>{};
    return s;
  }
  auto all = secrets(org_id);
  if (!all)
    return all.error();
  for (auto& s : *all)
    if (s.name == ref)
      return std::optional<secret_record>{std::move(s)};
  return std::optional<secret_record>{};
}

result<std::vector<secret_record>> store::secrets(const std::string& org_id) const {
  std::vector<secret_record> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, secrets_)};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (auto s = decode_record<secret_record>(it->value().ToStringView()); s && s->org_id == org_id)
      out.push_back(std::move(*s));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
    return a.created_ms != b.created_ms ? a.created_ms < b.created_ms : a.id < b.id;
  });
  return walked(*it, std::move(out));
}

status store::delete_secret(const std::string& id) {
  rocksdb::WriteBatch batch;
  batch.Delete(secrets_, id);
  return write(batch);
}

} // namespace sandboxd
