// Sandbox output logs and metric samples: bounded rings per sandbox.
#include "storage/store.hpp"

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/store_detail.hpp"
#include <atomic>
#include <chrono>
#include <mutex>

namespace sandboxd {

using namespace store_detail;

status store::append_logs(const std::string& sandbox_id, const std::vector<log_line>& lines,
                          size_t cap) {
  if (lines.empty())
    return success();
  static std::atomic<uint64_t> counter{0};
  std::lock_guard<std::mutex> guard{logs_mtx_};
  auto count_key = "logcount:" + sandbox_id;
  auto v = get(meta_, count_key);
  if (!v)
    return v.error();
  uint64_t count = *v ? from_be64(**v) : 0;
  rocksdb::WriteBatch batch;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count();
  for (auto& l : lines) {
    auto key = index_key(sandbox_id, static_cast<uint64_t>(us)) + be64(counter++);
    if (auto st = add_record(batch, logs_, key, l); !st)
      return st;
  }
  count += lines.size();
  if (count > cap) {
    // Drop the oldest beyond the cap (the new lines sort after them all).
    auto prefix = sandbox_id + std::string(1, '\0');
    std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, logs_)};
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && count > cap; it->Next()) {
      batch.Delete(logs_, it->key());
      --count;
    }
    if (!it->status().ok()) // the stored count would no longer be the ring's
      return read_failure(it->status());
  }
  batch.Put(meta_, count_key, be64(count));
  return write(batch, false);
}

result<std::vector<store::log_line>> store::logs(const std::string& sandbox_id, size_t limit,
                                                 int64_t since_ms) const {
  std::vector<log_line> out;
  auto prefix = sandbox_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, logs_)};
  for (it->SeekForPrev(prefix + std::string(16, '\xff'));
       it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Prev()) {
    auto l = decode_record<log_line>(it->value().ToStringView());
    if (!l)
      continue;
    if (l->timestamp_ms < since_ms)
      break;
    out.push_back(std::move(*l));
  }
  std::reverse(out.begin(), out.end());
  return walked(*it, std::move(out));
}

result<std::vector<store::log_line>>
store::logs_page(const std::string& sandbox_id, std::optional<int64_t> cursor_ms, bool forward,
                 size_t limit, const std::function<bool(const log_line&)>& keep) const {
  std::vector<log_line> out;
  auto prefix = sandbox_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, logs_)};
  // Keys sort by append time in microseconds, never before the line's own
  // timestamp: walking forward can seek to the cursor; walking backward
  // starts at the newest and skips what lies after it.
  if (forward)
    it->Seek(cursor_ms ? index_key(sandbox_id, static_cast<uint64_t>(std::max<int64_t>(0, *cursor_ms - 1) * 1000))
                       : prefix);
  else
    it->SeekForPrev(prefix + std::string(16, '\xff'));
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limit;
       forward ? it->Next() : it->Prev()) {
    auto l = decode_record<log_line>(it->value().ToStringView());
    if (!l)
      continue;
    if (cursor_ms && (forward ? l->timestamp_ms < *cursor_ms : l->timestamp_ms > *cursor_ms))
      continue;
    if (keep(*l))
      out.push_back(std::move(*l));
  }
  return walked(*it, std::move(out));
}

status store::append_metric(const std::string& sandbox_id, const container_sample& s,
                            size_t cap) {
  return append_metrics({{sandbox_id, s}}, cap);
}

status store::append_metrics(const std::vector<std::pair<std::string, container_sample>>& samples,
                             size_t cap) {
  // Each ring's size is kept beside it, so an append costs a read and a
  // seek, not a walk of the whole ring (200 appends/s at 1,000 sandboxes).
  std::lock_guard<std::mutex> guard{metrics_mtx_};
  rocksdb::WriteBatch batch;
  for (auto& [sandbox_id, s] : samples) {
    auto prefix = sandbox_id + std::string(1, '\0');
    auto count_key = "metriccount:" + sandbox_id;
    uint64_t count = 0;
    auto v = get(meta_, count_key);
    if (!v)
      return v.error();
    if (*v) {
      count = from_be64(**v);
    } else {
      // A ring written before the count was kept: counted once.
      std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, metrics_)};
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
        ++count;
      if (!it->status().ok())
        return read_failure(it->status());
    }
    if (auto st = add_record(batch, metrics_,
                             index_key(sandbox_id, static_cast<uint64_t>(s.timestamp_ms)), s);
        !st)
      return st;
    ++count;
    if (count > cap) {
      // The oldest go (the new sample sorts after them all).
      std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, metrics_)};
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && count > cap;
           it->Next()) {
        batch.Delete(metrics_, it->key());
        --count;
      }
      if (!it->status().ok())
        return read_failure(it->status());
    }
    batch.Put(meta_, count_key, be64(count));
  }
  return write(batch, false);
}

result<std::vector<container_sample>> store::metrics(const std::string& sandbox_id,
                                                     int64_t start_ms, int64_t end_ms) const {
  std::vector<container_sample> out;
  auto prefix = sandbox_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, metrics_)};
  for (it->Seek(index_key(sandbox_id, static_cast<uint64_t>(std::max<int64_t>(0, start_ms))));
       it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto s = decode_record<container_sample>(it->value().ToStringView());
    if (!s)
      continue;
    if (s->timestamp_ms > end_ms)
      break;
    out.push_back(*s);
  }
  return walked(*it, std::move(out));
}

result<std::optional<container_sample>>
store::latest_metric(const std::string& sandbox_id) const {
  auto prefix = sandbox_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, metrics_)};
  it->SeekForPrev(prefix + std::string(8, '\xff'));
  std::optional<container_sample> found;
  if (it->Valid() && it->key().starts_with(prefix))
    found = decode_record<container_sample>(it->value().ToStringView());
  return walked(*it, std::move(found));
}

} // namespace sandboxd
