#include "storage/store.hpp"

#include <algorithm>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "core/crypto.hpp"
#include "core/ids.hpp"

namespace sandboxd {

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
};

std::string be64(uint64_t x) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(x & 0xff);
    x >>= 8;
  }
  return out;
}

uint64_t from_be64(const rocksdb::Slice& s) {
  uint64_t x = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i)
    x = (x << 8) | static_cast<uint8_t>(s[i]);
  return x;
}

// Walks `it` backwards from where it stands over keys with `prefix`,
// collecting the values `decode` reads and `keep` accepts, at most `limit`;
// `more` tells whether another one follows.
template <class T, class Decode, class Keep>
std::vector<T> collect_backward(rocksdb::Iterator& it, const std::string& prefix, size_t limit,
                                Decode decode, Keep keep, bool* more) {
  std::vector<T> out;
  for (; it.Valid() && it.key().starts_with(prefix); it.Prev()) {
    std::optional<T> v = decode(it.value().ToString());
    if (!v || !keep(*v))
      continue;
    if (out.size() == limit) {
      if (more)
        *more = true;
      break;
    }
    out.push_back(std::move(*v));
  }
  return out;
}

// Index keys: the owner, a 0 separator (ids never contain it), then seq.
std::string index_key(const std::string& owner, uint64_t seq) {
  std::string k = owner;
  k.push_back('\0');
  k += be64(seq);
  return k;
}

// For readers whose callers take absent for an answer (listings, template
// lookups): an unreadable value is logged, then read as absent.
std::optional<std::string> readable(result<std::optional<std::string>> got,
                                    const std::string& what) {
  if (got)
    return std::move(*got);
  spdlog::error("store: {} is unreadable: {}", what, got.error().message);
  return std::nullopt;
}

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
    return failure{503, "cannot read the store: " + st.ToString()};
  return std::optional<std::string>{std::move(value)};
}

result<std::vector<event>> store::append(std::vector<event> events) {
  std::lock_guard<std::mutex> guard{append_mtx_};
  rocksdb::WriteBatch batch;
  auto seq = last_seq_;
  auto hash = last_hash_;
  for (auto& e : events) {
    e.seq = ++seq;
    e.prev_hash = hash;
    e.hash = chain_hash(e);
    hash = e.hash;
    batch.Put(events_, be64(e.seq), encode(e));
    batch.Put(by_org_, index_key(e.team_id, e.seq), "");
    batch.Put(by_sandbox_, index_key(e.sandbox_id, e.seq), "");
  }
  batch.Put(meta_, "head_hash", hash);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto st = db_->Write(wo, &batch);
  if (!st.ok())
    return failure{503, "event log write failed: " + st.ToString()};
  last_seq_ = seq;
  last_hash_ = hash;
  return events;
}

uint64_t store::last_seq() const {
  std::lock_guard<std::mutex> guard{append_mtx_};
  return last_seq_;
}

namespace {

nlohmann::json checkpoint_body(const store::checkpoint& c) {
  auto recs = nlohmann::json::array();
  for (auto& r : c.sandboxes)
    recs.push_back(to_storage_json(r));
  return {{"seq", c.seq}, {"hash", c.hash}, {"at", c.at_ms}, {"sandboxes", recs}};
}

} // namespace

result<std::optional<store::checkpoint>> store::load_checkpoint() const {
  auto text = get(meta_, "checkpoint");
  if (!text)
    return text.error();
  if (!*text)
    return std::optional<checkpoint>{};
  auto j = nlohmann::json::parse(**text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return std::optional<checkpoint>{checkpoint{0, "", 0, {}, "unreadable"}};
  checkpoint c;
  try {
    c.seq = j.at("seq");
    c.hash = j.at("hash");
    c.at_ms = j.at("at");
    c.signature = j.at("signature");
    for (auto& r : j.at("sandboxes"))
      if (auto rec = record_from_storage_json(r))
        c.sandboxes.push_back(std::move(*rec));
  } catch (const std::exception&) {
    c.signature = "unreadable";
  }
  return std::optional<checkpoint>{std::move(c)};
}

result<std::map<std::string, sandbox_record>>
store::replay(const std::function<void(const std::string&)>& on_bad,
              const std::function<void(sandbox_record&&)>& on_ended) const {
  std::map<std::string, sandbox_record> recs;
  uint64_t from = 1;
  auto c = load_checkpoint();
  if (!c)
    return c.error();
  if (*c) {
    for (auto& r : (*c)->sandboxes)
      recs[r.id] = r;
    from = (*c)->seq + 1;
  }
  auto scanned = scan(
    from,
    [&](const event& e) {
      auto [it, fresh] = recs.try_emplace(e.sandbox_id);
      auto st = apply(it->second, e);
      if (!st) {
        if (on_bad)
          on_bad("event " + e.id + " (seq " + std::to_string(e.seq) + ") does not apply: "
                 + st.error().message);
        if (fresh)
          recs.erase(it); // nothing of it applied (e.g. an event after its end was handed on)
      } else if (on_ended && it->second.state == sandbox_state::stopped) {
        on_ended(std::move(it->second));
        recs.erase(it);
      }
      return true;
    },
    [&](uint64_t seq) {
      if (on_bad)
        on_bad("event seq " + std::to_string(seq) + " is unreadable");
    });
  if (!scanned)
    return scanned.error();
  return recs;
}

result<std::optional<sandbox_record>>
store::replay_sandbox(const std::string& sandbox_id) const {
  sandbox_record rec;
  auto c = load_checkpoint();
  if (!c)
    return c.error();
  if (*c)
    for (auto& r : (*c)->sandboxes)
      if (r.id == sandbox_id)
        rec = r;
  bool found = !rec.id.empty();
  for (auto& e : events_of_sandbox(sandbox_id))
    if (e.seq > rec.last_seq)
      found |= static_cast<bool>(apply(rec, e));
  if (!found)
    return std::optional<sandbox_record>{};
  return std::optional<sandbox_record>{std::move(rec)};
}

result<uint64_t> store::compact(int64_t cutoff_ms) {
  std::lock_guard<std::mutex> guard{append_mtx_};
  auto loaded = load_checkpoint();
  if (!loaded)
    return loaded.error();
  auto& previous = *loaded;
  std::map<std::string, sandbox_record> recs;
  checkpoint next;
  if (previous) {
    for (auto& r : previous->sandboxes)
      recs[r.id] = r;
    next.seq = previous->seq;
    next.hash = previous->hash;
  }
  rocksdb::WriteBatch batch;
  uint64_t dropped = 0;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, events_)};
  for (it->Seek(be64(next.seq + 1)); it->Valid(); it->Next()) {
    auto seq = from_be64(it->key());
    if (seq >= last_seq_)
      break; // the head stays: appends link to it
    auto e = decode_event(it->value().ToString());
    if (!e)
      return internal_error("cannot compact: event seq " + std::to_string(seq) + " is unreadable");
    if (e->timestamp_ms >= cutoff_ms)
      break;
    // An event that does not apply is skipped, as replay skips it.
    (void)apply(recs[e->sandbox_id], *e);
    batch.Delete(events_, it->key());
    batch.Delete(by_org_, index_key(e->team_id, seq));
    batch.Delete(by_sandbox_, index_key(e->sandbox_id, seq));
    next.seq = seq;
    next.hash = e->hash;
    ++dropped;
  }
  if (dropped == 0)
    return uint64_t{0};
  next.at_ms = cutoff_ms;
  for (auto& [id, r] : recs)
    if (r.state != sandbox_state::stopped)
      next.sandboxes.push_back(r);
  auto body = checkpoint_body(next);
  body["signature"] = hmac_sha256_hex(secret_, "checkpoint:" + checkpoint_body(next).dump());
  batch.Put(meta_, "checkpoint", body.dump());
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto st = db_->Write(wo, &batch);
  if (!st.ok())
    return failure{503, "compaction write failed: " + st.ToString()};
  return dropped;
}

store::chain_head store::head() const {
  std::lock_guard<std::mutex> guard{append_mtx_};
  return {last_seq_, last_hash_};
}

store::verify_report store::verify() const {
  verify_report r;
  auto broken = [&](uint64_t seq, const std::string& id, std::string why) {
    r.ok = false;
    r.broken_seq = seq;
    r.broken_id = id;
    r.reason = std::move(why);
  };
  std::string prev;
  uint64_t prev_seq = 0;
  // A compacted log begins at its signed checkpoint.
  auto loaded = load_checkpoint();
  if (!loaded) {
    broken(0, "", loaded.error().message);
    return r;
  }
  if (auto& c = *loaded) {
    auto expected = hmac_sha256_hex(secret_, "checkpoint:" + checkpoint_body(*c).dump());
    if (!secure_equals(c->signature, expected)) {
      broken(c->seq, "", "the retention checkpoint's signature is invalid");
      return r;
    }
    prev = c->hash;
    prev_seq = c->seq;
  }
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, events_)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto seq = from_be64(it->key());
    auto e = decode_event(it->value().ToString());
    if (!e) {
      broken(seq, "", "the stored bytes do not decode");
      return r;
    }
    if (e->seq != seq) {
      broken(seq, e->id, "its sequence number does not match its position");
      return r;
    }
    if (prev_seq != 0 && seq != prev_seq + 1) {
      broken(seq, e->id, "events " + std::to_string(prev_seq + 1) + ".."
                           + std::to_string(seq - 1) + " are missing");
      return r;
    }
    if (e->prev_hash != prev) {
      broken(seq, e->id, "its prevHash is not the previous event's hash");
      return r;
    }
    if (chain_hash(*e) != e->hash) {
      broken(seq, e->id, "its hash does not match its contents");
      return r;
    }
    prev = e->hash;
    prev_seq = seq;
    ++r.checked;
  }
  if (!it->status().ok()) {
    broken(prev_seq + 1, "", "cannot read on: " + it->status().ToString());
    return r;
  }
  auto head = get(meta_, "head_hash");
  if (!head)
    broken(prev_seq, "", head.error().message);
  else if (head->value_or("") != prev)
    broken(prev_seq, "", "the recorded head is not the last event (events removed from the end?)");
  return r;
}

status store::scan(uint64_t from, const std::function<bool(const event&)>& f,
                   const std::function<void(uint64_t)>& on_corrupt) const {
  // A scan reads the log once from `from` on (a replay reads all of it):
  // read ahead, and keep its blocks out of the cache the API's reads use.
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.readahead_size = 4 << 20;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, events_)};
  for (it->Seek(be64(from)); it->Valid(); it->Next()) {
    auto e = decode_event(std::string_view{it->value().data(), it->value().size()});
    if (!e) {
      if (on_corrupt)
        on_corrupt(from_be64(it->key()));
      continue;
    }
    if (!f(*e))
      return success();
  }
  if (!it->status().ok())
    return failure{503, "cannot read the event log: " + it->status().ToString()};
  return success();
}

std::vector<event> store::events_of_sandbox(const std::string& id) const {
  std::vector<event> out;
  auto prefix = id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, by_sandbox_)};
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    auto k = it->key();
    k.remove_prefix(prefix.size());
    if (auto bytes = readable(get(events_, be64(from_be64(k))), "an event of " + id))
      if (auto e = decode_event(*bytes))
        out.push_back(std::move(*e));
  }
  return out;
}

std::vector<event> store::query_events(const event_query& q, bool* more) const {
  std::vector<event> out;
  if (more)
    *more = false;
  // The narrowest index that answers the query.
  auto* index = q.sandbox_id.empty() ? by_org_ : by_sandbox_;
  auto prefix = (q.sandbox_id.empty() ? q.org_id : q.sandbox_id) + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, index)};
  if (q.ascending)
    it->Seek(q.after_seq ? index_key(prefix.substr(0, prefix.size() - 1), *q.after_seq + 1) : prefix);
  else if (q.after_seq)
    it->SeekForPrev(index_key(prefix.substr(0, prefix.size() - 1), *q.after_seq - 1));
  else
    it->SeekForPrev(prefix + std::string(8, '\xff'));
  if (q.after_seq && !q.ascending && *q.after_seq == 0)
    return out;
  size_t skipped = 0;
  for (; it->Valid() && it->key().starts_with(prefix);
       q.ascending ? it->Next() : it->Prev()) {
    auto k = it->key();
    k.remove_prefix(prefix.size());
    auto bytes = readable(get(events_, be64(from_be64(k))), "an event of " + q.org_id);
    if (!bytes)
      continue;
    auto e = decode_event(*bytes);
    if (!e || e->team_id != q.org_id)
      continue;
    if (!q.types.empty()
        && std::find(q.types.begin(), q.types.end(), e->type) == q.types.end())
      continue;
    if (skipped < q.offset) {
      ++skipped;
      continue;
    }
    if (out.size() == q.limit) {
      if (more)
        *more = true;
      break;
    }
    out.push_back(std::move(*e));
  }
  return out;
}

result<std::optional<event>> store::event_at(uint64_t seq) const {
  auto bytes = get(events_, be64(seq));
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::optional<event>{};
  return decode_event(**bytes);
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

status store::put_webhook(const webhook& w) {
  return put(webhooks_, w.id, encode(w));
}

result<std::optional<webhook>> store::find_webhook(const std::string& id) const {
  auto text = get(webhooks_, id);
  if (!text)
    return text.error();
  if (!*text)
    return std::optional<webhook>{};
  return decode_webhook(**text);
}

std::vector<webhook> store::webhooks(const std::string& org_id) const {
  std::vector<webhook> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, webhooks_)};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (auto w = decode_webhook(it->value().ToString()); w && (org_id.empty() || w->org_id == org_id))
      out.push_back(std::move(*w));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.created_ms < b.created_ms; });
  return out;
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
  return put(deliveries_, index_key(d.webhook_id, d.seq), encode(d));
}

result<std::optional<delivery>> store::find_delivery(const std::string& webhook_id,
                                                     uint64_t seq) const {
  auto text = get(deliveries_, index_key(webhook_id, seq));
  if (!text)
    return text.error();
  if (!*text)
    return std::optional<delivery>{};
  return decode_delivery(**text);
}

std::vector<delivery> store::deliveries(const std::string& webhook_id,
                                        std::optional<uint64_t> before_seq, size_t limit,
                                        const std::function<bool(const delivery&)>& keep,
                                        bool* more) const {
  std::vector<delivery> out;
  if (more)
    *more = false;
  auto prefix = webhook_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, deliveries_)};
  if (before_seq && *before_seq == 0)
    return out;
  it->SeekForPrev(before_seq ? index_key(webhook_id, *before_seq - 1) : prefix + std::string(8, '\xff'));
  return collect_backward<delivery>(
    *it, prefix, limit, [](const std::string& v) { return decode_delivery(v); },
    [&](const delivery& d) { return !keep || keep(d); }, more);
}

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
    batch.Put(logs_, key,
              nlohmann::json{{"t", l.timestamp_ms}, {"s", l.stream}, {"l", l.line}}.dump());
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
  }
  batch.Put(meta_, count_key, be64(count));
  return write(batch, false);
}

std::vector<store::log_line> store::logs(const std::string& sandbox_id, size_t limit,
                                         int64_t since_ms) const {
  std::vector<log_line> out;
  auto prefix = sandbox_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, logs_)};
  for (it->SeekForPrev(prefix + std::string(16, '\xff'));
       it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Prev()) {
    auto j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (j.is_discarded())
      continue;
    log_line l{j.value("t", int64_t{0}), j.value("s", ""), j.value("l", "")};
    if (l.timestamp_ms < since_ms)
      break;
    out.push_back(std::move(l));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

uint64_t store::event_log_bytes() const {
  uint64_t total = 0;
  for (auto* cf : {events_, by_org_, by_sandbox_}) {
    uint64_t v = 0;
    if (cf && db_->GetIntProperty(cf, "rocksdb.estimate-live-data-size", &v))
      total += v;
    if (cf && db_->GetIntProperty(cf, "rocksdb.cur-size-all-mem-tables", &v))
      total += v;
  }
  return total;
}

std::vector<store::log_line> store::logs_page(const std::string& sandbox_id,
                                              std::optional<int64_t> cursor_ms, bool forward,
                                              size_t limit,
                                              const std::function<bool(const log_line&)>& keep) const {
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
    auto j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (j.is_discarded())
      continue;
    log_line l{j.value("t", int64_t{0}), j.value("s", ""), j.value("l", "")};
    if (cursor_ms && (forward ? l.timestamp_ms < *cursor_ms : l.timestamp_ms > *cursor_ms))
      continue;
    if (keep(l))
      out.push_back(std::move(l));
  }
  return out;
}

namespace {

nlohmann::json sample_json(const container_sample& s) {
  return {{"t", s.timestamp_ms}, {"c", s.cpu_count}, {"p", s.cpu_used_pct},
          {"mu", s.mem_used},    {"mt", s.mem_total}, {"mc", s.mem_cache},
          {"du", s.disk_used},   {"dt", s.disk_total}};
}

std::optional<container_sample> sample_from(const rocksdb::Slice& v) {
  auto j = nlohmann::json::parse(v.ToString(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return std::nullopt;
  container_sample s;
  s.timestamp_ms = j.value("t", int64_t{0});
  s.cpu_count = j.value("c", 0);
  s.cpu_used_pct = j.value("p", 0.0);
  s.mem_used = j.value("mu", int64_t{0});
  s.mem_total = j.value("mt", int64_t{0});
  s.mem_cache = j.value("mc", int64_t{0});
  s.disk_used = j.value("du", int64_t{0});
  s.disk_total = j.value("dt", int64_t{0});
  return s;
}

} // namespace

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
    }
    batch.Put(metrics_, index_key(sandbox_id, static_cast<uint64_t>(s.timestamp_ms)),
              sample_json(s).dump());
    ++count;
    if (count > cap) {
      // The oldest go (the new sample sorts after them all).
      std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, metrics_)};
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && count > cap;
           it->Next()) {
        batch.Delete(metrics_, it->key());
        --count;
      }
    }
    batch.Put(meta_, count_key, be64(count));
  }
  return write(batch, false);
}

std::vector<container_sample> store::metrics(const std::string& sandbox_id, int64_t start_ms,
                                             int64_t end_ms) const {
  std::vector<container_sample> out;
  auto prefix = sandbox_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, metrics_)};
  for (it->Seek(index_key(sandbox_id, static_cast<uint64_t>(std::max<int64_t>(0, start_ms))));
       it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto s = sample_from(it->value());
    if (!s)
      continue;
    if (s->timestamp_ms > end_ms)
      break;
    out.push_back(*s);
  }
  return out;
}

std::optional<container_sample> store::latest_metric(const std::string& sandbox_id) const {
  auto prefix = sandbox_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, metrics_)};
  it->SeekForPrev(prefix + std::string(8, '\xff'));
  if (it->Valid() && it->key().starts_with(prefix))
    return sample_from(it->value());
  return std::nullopt;
}

// Snapshot keys: org, 0, then the cursor: the creation time as 20 digits
// and the id, so an org's snapshots sort by time and the cursor is text.
std::string store::snapshot_cursor(const snapshot_info& s) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020lld_", static_cast<long long>(s.created_ms));
  return digits + s.id;
}

status store::put_snapshot(const snapshot_info& s) {
  return put(snapshots_, s.org_id + std::string(1, '\0') + snapshot_cursor(s),
             to_storage_json(s).dump());
}

status store::delete_snapshot(const snapshot_info& s) {
  rocksdb::WriteBatch batch;
  batch.Delete(snapshots_, s.org_id + std::string(1, '\0') + snapshot_cursor(s));
  return write(batch);
}

std::vector<snapshot_info>
store::snapshots(const std::string& org_id, size_t limit,
                 const std::function<bool(const snapshot_info&)>& keep,
                 const std::optional<std::string>& before, bool* more) const {
  std::vector<snapshot_info> out;
  if (more)
    *more = false;
  auto prefix = org_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, snapshots_)};
  if (before) {
    it->SeekForPrev(prefix + *before);
    if (it->Valid() && it->key().ToString() == prefix + *before)
      it->Prev();
  } else {
    it->SeekForPrev(prefix + std::string(1, '\x7f'));
  }
  return collect_backward<snapshot_info>(
    *it, prefix, limit,
    [](const std::string& v) {
      auto j = nlohmann::json::parse(v, nullptr, false);
      return j.is_discarded() ? std::nullopt : snapshot_from_storage_json(j);
    },
    keep, more);
}

std::vector<snapshot_info> store::all_snapshots() const {
  std::vector<snapshot_info> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, snapshots_)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (j.is_discarded())
      continue;
    if (auto s = snapshot_from_storage_json(j))
      out.push_back(std::move(*s));
  }
  return out;
}

std::optional<snapshot_info> store::find_snapshot(const std::string& org_id,
                                                  const std::string& ref) const {
  auto found = snapshots(org_id, 1, [&](const snapshot_info& s) { return refers_to(ref, s); },
                         std::nullopt, nullptr);
  if (found.empty())
    return std::nullopt;
  return found.front();
}

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

bool store::has_keys() const {
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, keys_)};
  it->SeekToFirst();
  return it->Valid();
}


// -- an org's own templates ---------------------------------------------------

namespace {

std::string owned_key(const std::string& owner, const std::string& id) {
  return owner + std::string(1, '\0') + id;
}

} // namespace

status store::put_user_template(const user_template& t,
                                const std::optional<template_build>& build) {
  rocksdb::WriteBatch batch;
  batch.Put(templates_, owned_key(t.org_id, t.id), to_storage_json(t).dump());
  if (build)
    batch.Put(template_builds_, owned_key(build->template_id, build->id),
              to_storage_json(*build).dump());
  return write(batch);
}

std::vector<user_template> store::user_templates(const std::string& org_id) const {
  std::vector<user_template> out;
  auto prefix = org_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, templates_)};
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (auto t = j.is_discarded() ? std::nullopt : user_template_from_storage_json(j))
      out.push_back(std::move(*t));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
    return std::tie(a.created_ms, a.id) < std::tie(b.created_ms, b.id);
  });
  return out;
}

std::vector<user_template> store::all_user_templates() const {
  std::vector<user_template> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, templates_)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (auto t = j.is_discarded() ? std::nullopt : user_template_from_storage_json(j))
      out.push_back(std::move(*t));
  }
  return out;
}

std::optional<user_template> store::find_user_template(const std::string& org_id,
                                                       const std::string& ref) const {
  if (ref.empty())
    return std::nullopt;
  if (auto raw = readable(get(templates_, owned_key(org_id, ref)), "template " + ref)) {
    auto j = nlohmann::json::parse(*raw, nullptr, false);
    if (!j.is_discarded())
      return user_template_from_storage_json(j);
  }
  for (auto& t : user_templates(org_id))
    if (t.name == ref)
      return t;
  return std::nullopt;
}

status store::delete_user_template(const user_template& t) {
  rocksdb::WriteBatch batch;
  batch.Delete(templates_, owned_key(t.org_id, t.id));
  auto prefix = t.id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, template_builds_)};
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto build_id = it->key().ToString().substr(prefix.size());
    batch.Delete(template_builds_, it->key());
    batch.DeleteRange(build_logs_, build_id + std::string(1, '\0'),
                      build_id + std::string(1, '\1'));
  }
  return write(batch);
}

status store::put_template_build(const template_build& b) {
  return put(template_builds_, owned_key(b.template_id, b.id), to_storage_json(b).dump());
}

std::optional<template_build> store::find_template_build(const std::string& template_id,
                                                         const std::string& build_id) const {
  auto raw = readable(get(template_builds_, owned_key(template_id, build_id)),
                      "build " + build_id);
  if (!raw)
    return std::nullopt;
  auto j = nlohmann::json::parse(*raw, nullptr, false);
  return j.is_discarded() ? std::nullopt : build_from_storage_json(j);
}

std::vector<template_build> store::template_builds(const std::string& template_id) const {
  std::vector<template_build> out;
  auto prefix = template_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, template_builds_)};
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (auto b = j.is_discarded() ? std::nullopt : build_from_storage_json(j))
      out.push_back(std::move(*b));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
    return std::tie(a.created_ms, a.id) > std::tie(b.created_ms, b.id);
  });
  return out;
}

status store::append_build_logs(const std::string& build_id,
                                const std::vector<build_log_entry>& lines, size_t cap) {
  if (lines.empty())
    return success();
  std::lock_guard<std::mutex> guard{build_logs_mtx_};
  auto prefix = build_id + std::string(1, '\0');
  uint64_t next = 0;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, build_logs_)};
  it->SeekForPrev(prefix + std::string(8, '\xff'));
  if (it->Valid() && it->key().starts_with(prefix))
    next = from_be64(rocksdb::Slice{it->key().data() + prefix.size(),
                                    it->key().size() - prefix.size()})
           + 1;
  rocksdb::WriteBatch batch;
  for (auto& l : lines) {
    if (next >= cap && l.level != "error")
      continue;
    batch.Put(build_logs_, prefix + be64(next++), to_storage_json(l).dump());
  }
  return write(batch, false);
}

std::vector<build_log_entry>
store::build_logs(const std::string& build_id, size_t offset, size_t limit,
                  const std::function<bool(const build_log_entry&)>& keep) const {
  std::vector<build_log_entry> out;
  auto prefix = build_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, build_logs_)};
  // Without a filter the offset is a position in the key space.
  it->Seek(keep ? prefix : prefix + be64(offset));
  size_t skipped = keep ? 0 : offset;
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
    auto j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    auto l = j.is_discarded() ? std::nullopt : build_log_from_storage_json(j);
    if (!l || (keep && !keep(*l)))
      continue;
    if (skipped < offset) {
      ++skipped;
      continue;
    }
    out.push_back(std::move(*l));
  }
  return out;
}

} // namespace sandboxd
