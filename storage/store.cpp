// Opening and closing the store, and its raw reads and writes. The rest is
// split by concern: store_event_log, store_accounts, store_webhooks,
// store_telemetry, store_artifacts (.cpp).
#include "storage/store.hpp"

#include <algorithm>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <spdlog/spdlog.h>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "core/crypto.hpp"
#include "core/ids.hpp"
#include "storage/store_detail.hpp"

namespace sandboxd {

using namespace store_detail;

namespace {

const std::vector<std::string> cf_names = {
  rocksdb::kDefaultColumnFamilyName,
  "events",
  "events_by_org",
  "events_by_sandbox",
  "orgs",
  "api_keys",
  "meta",
  "webhooks",
  "webhook_cursors",
  "deliveries",
  "logs",
  "metrics",
  "snapshots",
  "templates",
  "template_builds",
  "template_build_logs",
  "volumes",
  "secrets",
};

} // namespace

result<std::unique_ptr<store>> store::open(const std::string& dir) {
  return open_impl(dir, false);
}

result<std::unique_ptr<store>> store::open_secondary(const std::string& dir) {
  return open_impl(dir, true);
}

result<std::unique_ptr<store>> store::open_impl(const std::string& dir, bool read_only) {
  rocksdb::Options opts;
  opts.create_if_missing = !read_only;
  opts.create_missing_column_families = !read_only;
  // A secondary must keep every table file open: the primary may delete
  // one (compaction) between the secondary's catch-up and its read.
  opts.max_open_files = read_only ? -1 : 256;
  // Memtables are most of the server's memory: without a cap each family
  // may hold 64 MiB before a flush. Flushing earlier costs little here.
  opts.db_write_buffer_size = 32 << 20;
  // Every append also writes `meta`, a family whose memtable never fills:
  // without a cap on the WAL's total size, RocksDB keeps every WAL file it
  // still covers (measured: 500 MiB after 1,000,000 events), and the next
  // start replays them all. Past this size, such families are flushed.
  opts.max_total_wal_size = 32 << 20;
  // A secondary (an auditor) opens what exists: a store written by an older
  // version lacks the newer families, which auditing never reads.
  std::vector<std::string> names = cf_names;
  if (read_only) {
    std::vector<std::string> existing;
    if (rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions{}, dir, &existing).ok())
      names.erase(std::remove_if(names.begin(), names.end(),
                                 [&](auto& n) {
                                   return std::find(existing.begin(), existing.end(), n)
                                          == existing.end();
                                 }),
                  names.end());
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  rocksdb::ColumnFamilyOptions family;
  family.write_buffer_size = 8 << 20;
  for (auto& name : names)
    descs.emplace_back(name, family);
  std::unique_ptr<store> s{new store};
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> opened;
  // A read-only open beside a live writer is undefined in RocksDB; a
  // secondary instance is the supported way: it keeps its own info log and
  // manifest position in a directory of its own, then replays the primary's
  // MANIFEST and WAL up to now.
  if (read_only) {
    char tmpl[] = "/tmp/sandboxd-reader-XXXXXX";
    if (!mkdtemp(tmpl))
      return failure{503, errno_text("cannot make a directory for the secondary store")};
    s->secondary_dir_ = tmpl;
  }
  auto st = read_only
              ? rocksdb::DB::OpenAsSecondary(opts, dir, s->secondary_dir_, descs, &opened, &raw)
              : rocksdb::DB::Open(opts, dir, descs, &opened, &raw);
  if (!st.ok())
    return failure{503, "cannot open the store in " + dir + ": " + st.ToString()};
  s->db_.reset(raw);
  s->handles_ = opened; // closed with the store, whatever happens next
  if (read_only) {
    if (auto caught = s->db_->TryCatchUpWithPrimary(); !caught.ok())
      return failure{503, "cannot catch up with the store in " + dir + ": " + caught.ToString()};
  }
  // Each family by its name (never by its place in a list); one a
  // secondary did not find (an older store) stays null, and goes unread.
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
  for (size_t i = 0; i < names.size(); ++i)
    by_name[names[i]] = opened[i];
  const std::pair<const char*, rocksdb::ColumnFamilyHandle* store::*> members[] = {
    {"events", &store::events_},
    {"events_by_org", &store::by_org_},
    {"events_by_sandbox", &store::by_sandbox_},
    {"orgs", &store::orgs_},
    {"api_keys", &store::keys_},
    {"meta", &store::meta_},
    {"webhooks", &store::webhooks_},
    {"webhook_cursors", &store::cursors_},
    {"deliveries", &store::deliveries_},
    {"logs", &store::logs_},
    {"metrics", &store::metrics_},
    {"snapshots", &store::snapshots_},
    {"templates", &store::templates_},
    {"template_builds", &store::template_builds_},
    {"template_build_logs", &store::build_logs_},
    {"volumes", &store::volumes_},
    {"secrets", &store::secrets_},
  };
  for (auto& [name, member] : members) {
    auto found = by_name.find(name);
    if (found == by_name.end() && !read_only)
      return internal_error(std::string{"the store has no column family "} + name);
    (*s).*member = found == by_name.end() ? nullptr : found->second;
  }
  // The newest sequence number is the last key of the events family.
  std::unique_ptr<rocksdb::Iterator> it{
    s->db_->NewIterator(rocksdb::ReadOptions{}, s->events_)};
  it->SeekToLast();
  if (it->Valid())
    s->last_seq_ = from_be64(it->key());
  if (!it->status().ok())
    return failure{503, "cannot read the store's events: " + it->status().ToString()};
  // Unreadable is not absent: a new secret or an empty head would break
  // every token and the hash chain.
  auto head = s->get(s->meta_, "head_hash");
  if (!head)
    return head.error();
  s->last_hash_ = head->value_or("");
  auto secret = s->get(s->meta_, "secret");
  if (!secret)
    return secret.error();
  if (*secret) {
    s->secret_ = **secret;
  } else if (!read_only) {
    s->secret_ = random_hex(32);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto put = s->db_->Put(wo, s->meta_, "secret", s->secret_);
    if (!put.ok())
      return failure{503, "cannot write the store: " + put.ToString()};
  }
  if (!read_only)
    if (auto st = s->upgrade_records(); !st)
      return failure{st.error().status, "cannot upgrade the store's records: " + st.error().message};
  return s;
}

store::~store() {
  if (db_) {
    for (auto* h : handles_)
      if (h)
        db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }
  if (!secondary_dir_.empty()) {
    std::error_code ec; // a leftover in /tmp is harmless; nothing to report to
    std::filesystem::remove_all(secondary_dir_, ec);
  }
}

result<std::optional<std::string>> store::get(rocksdb::ColumnFamilyHandle* cf,
                                              const std::string& key) const {
  std::string value;
  auto st = db_->Get(rocksdb::ReadOptions{}, cf, key, &value);
  if (st.IsNotFound())
    return std::optional<std::string>{};
  if (!st.ok())
    return read_failure(st);
  return std::optional<std::string>{std::move(value)};
}


status store::write(rocksdb::WriteBatch& batch, bool sync) {
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  auto st = db_->Write(wo, &batch);
  if (!st.ok())
    return failure{503, "cannot write the store: " + st.ToString()};
  return success();
}

status store::put(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                  const std::string& value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto st = db_->Put(wo, cf, key, value);
  if (!st.ok())
    return failure{503, "cannot write the store: " + st.ToString()};
  return success();
}

status store::put_drained_nodes(const std::set<std::string>& nodes) {
  return put_record(meta_, "drained_nodes", nodes);
}

result<std::set<std::string>> store::drained_nodes() const {
  auto bytes = get(meta_, "drained_nodes");
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::set<std::string>{};
  auto nodes = decode_record<std::set<std::string>>(**bytes);
  if (!nodes) // a drain forgotten would send sandboxes to a node being emptied
    return internal_error("the stored drained nodes do not decode");
  return std::move(*nodes);
}

} // namespace sandboxd
