// Webhooks, their cursors and their deliveries.
#include "storage/store.hpp"

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/store_detail.hpp"

namespace sandboxd {

using namespace store_detail;

status store::put_webhook(const webhook& w) {
  return put_record(webhooks_, w.id, w);
}

result<std::optional<webhook>> store::find_webhook(const std::string& id) const {
  return get_record<webhook>(webhooks_, id);
}

result<std::vector<webhook>> store::webhooks(const std::string& org_id) const {
  std::vector<webhook> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, webhooks_)};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (auto w = decode_record<webhook>(it->value().ToStringView()); w && (org_id.empty() || w->org_id == org_id))
      out.push_back(std::move(*w));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.created_ms < b.created_ms; });
  return walked(*it, std::move(out));
}

status store::delete_webhook(const std::string& id) {
  rocksdb::WriteBatch batch;
  batch.Delete(webhooks_, id);
  batch.Delete(cursors_, id);
  auto prefix = id + std::string(1, '\0');
  batch.DeleteRange(deliveries_, prefix, id + std::string(1, '\1'));
  return write(batch);
}

result<uint64_t> store::webhook_cursor(const std::string& id) const {
  auto v = get(cursors_, id);
  if (!v)
    return v.error();
  return *v ? from_be64(**v) : uint64_t{0};
}

status store::set_webhook_cursor(const std::string& id, uint64_t seq) {
  return put(cursors_, id, be64(seq));
}

status store::put_delivery(const delivery& d) {
  return put_record(deliveries_, index_key(d.webhook_id, d.seq), d);
}

result<std::optional<delivery>> store::find_delivery(const std::string& webhook_id,
                                                     uint64_t seq) const {
  return get_record<delivery>(deliveries_, index_key(webhook_id, seq));
}

result<std::vector<delivery>>
store::deliveries(const std::string& webhook_id, std::optional<uint64_t> before_seq, size_t limit,
                  const std::function<bool(const delivery&)>& keep, bool* more) const {
  if (more)
    *more = false;
  auto prefix = webhook_id + std::string(1, '\0');
  if (before_seq && *before_seq == 0)
    return std::vector<delivery>{};
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, deliveries_)};
  it->SeekForPrev(before_seq ? index_key(webhook_id, *before_seq - 1) : prefix + std::string(8, '\xff'));
  return collect_backward<delivery>(
    *it, prefix, limit, [](const std::string& v) { return decode_record<delivery>(v); },
    [&](const delivery& d) { return !keep || keep(d); }, more);
}

} // namespace sandboxd
