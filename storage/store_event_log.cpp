// The event log: appends on the hash chain, checkpoints and compaction,
// replay, verification, scans and the per-org and per-sandbox indexes.
#include "storage/store.hpp"

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/store_detail.hpp"
#include <mutex>

#include "core/crypto.hpp"

namespace sandboxd {

using namespace store_detail;

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

result<std::string> store::checkpoint_signature(checkpoint c) const {
  c.signature.clear();
  auto bytes = encode_record(c);
  if (!bytes)
    return bytes.error();
  return hmac_sha256_hex(secret_, "checkpoint:" + *bytes);
}

result<std::optional<store::checkpoint>> store::load_checkpoint() const {
  auto bytes = get(meta_, "checkpoint");
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::optional<checkpoint>{};
  if (auto c = decode_record<checkpoint>(**bytes))
    return c;
  // An auditor (a secondary) may open a store no server of this version
  // opened yet: its checkpoint is still JSON text.
  auto format = get(meta_, "record_format");
  if (!format)
    return format.error();
  if (!*format && (**bytes)[0] == '{')
    return failure{409, "the retention checkpoint is in an older version's form: "
                        "sandboxd serve rewrites it when it next opens the store"};
  // Bytes that do not decode: verify reports it (the signature cannot match).
  return std::optional<checkpoint>{checkpoint{0, "", 0, {}, "unreadable"}};
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
      if (!is_sandbox_event(e.type))
        return true; // a volume's
      auto [it, fresh] = recs.try_emplace(e.sandbox_id);
      auto st = apply(it->second, e);
      if (!st) {
        if (on_bad)
          on_bad("event " + e.id + " (seq " + std::to_string(e.seq) + ") does not apply: "
                 + st.error().message);
        if (fresh)
          recs.erase(it); // nothing of it applied (e.g. an event after its end was handed on)
      } else if (on_ended && ended(it->second)) {
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
  auto events = events_of_sandbox(sandbox_id);
  if (!events)
    return events.error();
  for (auto& e : *events)
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
    // Folding into a checkpoint that does not hold would sign it anew.
    auto expected = checkpoint_signature(*previous);
    if (!expected)
      return expected.error();
    if (!secure_equals(previous->signature, *expected))
      return failure{409, "cannot compact: the retention checkpoint's signature is invalid "
                          "(sandboxd audit verify); compaction would sign what it holds"};
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
    if (is_sandbox_event(e->type))
      (void)apply(recs[e->sandbox_id], *e);
    batch.Delete(events_, it->key());
    batch.Delete(by_org_, index_key(e->team_id, seq));
    batch.Delete(by_sandbox_, index_key(e->sandbox_id, seq));
    next.seq = seq;
    next.hash = e->hash;
    ++dropped;
  }
  if (!it->status().ok())
    return read_failure(it->status());
  if (dropped == 0)
    return uint64_t{0};
  next.at_ms = cutoff_ms;
  for (auto& [id, r] : recs)
    if (!ended(r))
      next.sandboxes.push_back(r);
  auto signature = checkpoint_signature(next);
  if (!signature)
    return signature.error();
  next.signature = std::move(*signature);
  if (auto st = add_record(batch, meta_, "checkpoint", next); !st)
    return st.error();
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
    auto expected = checkpoint_signature(*c);
    if (!expected) {
      broken(c->seq, "", expected.error().message);
      return r;
    }
    if (!secure_equals(c->signature, *expected)) {
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

// The event an index entry at `it` (past `prefix`) points to: nullopt when
// it is gone or does not decode (skipped, as a scan skips it), a failure
// when it cannot be read.
result<std::optional<event>> store::indexed_event(const rocksdb::Iterator& it,
                                                 size_t prefix) const {
  auto k = it.key();
  k.remove_prefix(prefix);
  auto bytes = get(events_, be64(from_be64(k)));
  if (!bytes)
    return bytes.error();
  return *bytes ? decode_event(**bytes) : std::nullopt;
}

result<std::vector<event>> store::events_of_sandbox(const std::string& id) const {
  std::vector<event> out;
  auto prefix = id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, by_sandbox_)};
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    auto e = indexed_event(*it, prefix.size());
    if (!e)
      return e.error();
    if (*e)
      out.push_back(std::move(**e));
  }
  return walked(*it, std::move(out));
}

result<std::vector<event>> store::query_events(const event_query& q, bool* more) const {
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
    auto got = indexed_event(*it, prefix.size());
    if (!got)
      return got.error();
    auto& e = *got;
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
  return walked(*it, std::move(out));
}

result<std::optional<event>> store::event_at(uint64_t seq) const {
  auto bytes = get(events_, be64(seq));
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::optional<event>{};
  return decode_event(**bytes);
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

} // namespace sandboxd
