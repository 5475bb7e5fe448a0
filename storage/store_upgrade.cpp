// The open-time upgrade of records written before record format 1 (JSON
// text) to storage/record_codec.hpp's form. It runs once: meta
// "record_format" then says "1" and later opens skip the walk. A crash
// midway is harmless: a record already rewritten is skipped by the next
// walk, which finishes the rest. One way: a version before it reads none of
// the rewritten records.
#include "storage/store.hpp"

#include <functional>
#include <limits>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "core/bounded_json.hpp"
#include "storage/legacy_records.hpp"
#include "storage/store_detail.hpp"

namespace sandboxd {

using namespace store_detail;

namespace {

constexpr const char* record_format_key = "record_format";
constexpr size_t upgrade_batch = 1024; // records per write: bounds the batch's memory

// A stored value as JSON when it is one of the old form; nullopt for one
// already in the current form or one that is not JSON at all. No size cap:
// the old versions wrote these values whole (a checkpoint of many sandboxes
// with egress rules passes 16 MiB); the depth check stays.
std::optional<nlohmann::json> legacy_json(const rocksdb::Slice& value) {
  if (value.empty() || in_record_format(value.ToStringView()))
    return std::nullopt;
  auto j = parse_json_bounded(value.ToStringView(),
                              json_limits{std::numeric_limits<size_t>::max(), 64},
                              "stored record");
  if (!j)
    return std::nullopt;
  return std::move(*j);
}

} // namespace

status store::upgrade_records() {
  auto format = get(meta_, record_format_key);
  if (!format)
    return format.error();
  if (*format && **format == "1")
    return success();
  size_t rewritten = 0;
  // Every value of `cf` in the old form, rewritten in the current one. One
  // that cannot be read is left as it is: reads skip it, as they did.
  auto rewrite = [&](rocksdb::ColumnFamilyHandle* cf, auto from_json) -> status {
    size_t unreadable = 0;
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, cf)};
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (in_record_format(it->value().ToStringView()))
        continue;
      auto j = legacy_json(it->value());
      auto rec = j ? from_json(*j) : std::nullopt;
      if (!rec) {
        ++unreadable;
        continue;
      }
      if (auto st = add_record(batch, cf, it->key().ToString(), *rec); !st)
        return st;
      ++rewritten;
      if (batch.Count() >= upgrade_batch) {
        if (auto st = write(batch); !st)
          return st;
        batch.Clear();
      }
    }
    if (!it->status().ok()) // a record left in the old form would read as absent
      return read_failure(it->status());
    if (unreadable > 0)
      spdlog::warn("store: {} records of {} could not be read in the old form either; left "
                   "as they were (reads skip them)",
                   unreadable, cf->GetName());
    return write(batch);
  };
  const std::function<status()> families[] = {
    [&] { return rewrite(webhooks_, legacy::webhook_from); },
    [&] { return rewrite(deliveries_, legacy::delivery_from); },
    [&] { return rewrite(volumes_, legacy::volume_from); },
    [&] { return rewrite(secrets_, legacy::secret_from); },
    [&] { return rewrite(snapshots_, legacy::snapshot_from); },
    [&] { return rewrite(templates_, legacy::template_from); },
    [&] { return rewrite(template_builds_, legacy::build_from); },
    [&] { return rewrite(build_logs_, legacy::build_log_from); },
    [&] { return rewrite(logs_, legacy::log_line_from); },
    [&] { return rewrite(metrics_, legacy::sample_from); },
  };
  for (auto& family : families)
    if (auto st = family(); !st)
      return st;
  // In `meta`: the drained nodes, and the checkpoint, signed anew over its
  // new form only when its old signature held: one that did not keeps its
  // old signature, which the new form's never equals, so verify reports it
  // (and compaction refuses to sign over it) as before the upgrade.
  rocksdb::WriteBatch batch;
  if (auto v = get(meta_, "drained_nodes"); !v) {
    return v.error();
  } else if (*v) {
    if (auto j = legacy_json(**v)) {
      auto nodes = legacy::drained_nodes_from(*j);
      if (!nodes)
        return internal_error("the stored drained nodes do not decode");
      if (auto st = add_record(batch, meta_, "drained_nodes", *nodes); !st)
        return st;
    }
  }
  if (auto v = get(meta_, "checkpoint"); !v) {
    return v.error();
  } else if (*v) {
    auto j = legacy_json(**v);
    auto old = j ? legacy::checkpoint_from(*j, secret_) : std::nullopt;
    if (old) {
      if (old->signed_ok) {
        auto signature = checkpoint_signature(old->body);
        if (!signature)
          return signature.error();
        old->body.signature = std::move(*signature);
      } else {
        spdlog::warn("store: the retention checkpoint's signature does not hold; it keeps "
                     "it (verify reports it)");
      }
      if (auto st = add_record(batch, meta_, "checkpoint", old->body); !st)
        return st;
      ++rewritten;
    } else if (!(**v).empty() && !in_record_format(**v)) {
      spdlog::warn("store: the retention checkpoint is neither of the old form (a field or "
                   "one of its sandboxes does not read) nor of this one; left as it is "
                   "(verify reports it)");
    }
  }
  batch.Put(meta_, record_format_key, "1");
  if (auto st = write(batch); !st)
    return st;
  if (rewritten > 0)
    spdlog::info("store: {} records of an older version rewritten in record format 1", rewritten);
  return success();
}

} // namespace sandboxd
