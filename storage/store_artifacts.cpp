// Snapshots, an org's own templates, their builds and build logs.
#include "storage/store.hpp"

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/store_detail.hpp"
#include <cstdio>

namespace sandboxd {

using namespace store_detail;

// Snapshot keys: org, 0, then the cursor: the creation time as 20 digits
// and the id, so an org's snapshots sort by time and the cursor is text.
std::string store::snapshot_cursor(const snapshot_info& s) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020lld_", static_cast<long long>(s.created_ms));
  return digits + s.id;
}

status store::put_snapshot(const snapshot_info& s) {
  return put_record(snapshots_, s.org_id + std::string(1, '\0') + snapshot_cursor(s), s);
}

status store::delete_snapshot(const snapshot_info& s) {
  rocksdb::WriteBatch batch;
  batch.Delete(snapshots_, s.org_id + std::string(1, '\0') + snapshot_cursor(s));
  return write(batch);
}

result<std::vector<snapshot_info>>
store::snapshots(const std::string& org_id, size_t limit,
                 const std::function<bool(const snapshot_info&)>& keep,
                 const std::optional<std::string>& before, bool* more) const {
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
    [](const std::string& v) { return decode_record<snapshot_info>(v); },
    keep, more);
}

result<std::vector<snapshot_info>> store::all_snapshots(size_t* unreadable) const {
  std::vector<snapshot_info> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, snapshots_)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (auto s = decode_record<snapshot_info>(it->value().ToStringView()))
      out.push_back(std::move(*s));
    else if (unreadable)
      ++*unreadable;
  }
  return walked(*it, std::move(out));
}

result<std::optional<snapshot_info>> store::find_snapshot(const std::string& org_id,
                                                          const std::string& ref) const {
  return find_snapshot_if(org_id, [&](const snapshot_info& s) { return refers_to(ref, s); });
}

result<std::optional<snapshot_info>>
store::find_snapshot_if(const std::string& org_id,
                        const std::function<bool(const snapshot_info&)>& keep) const {
  auto found = snapshots(org_id, 1, keep, std::nullopt, nullptr);
  if (!found)
    return found.error();
  if (found->empty())
    return std::optional<snapshot_info>{};
  return std::optional<snapshot_info>{std::move(found->front())};
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
  if (auto st = add_record(batch, templates_, owned_key(t.org_id, t.id), t); !st)
    return st;
  if (build)
    if (auto st = add_record(batch, template_builds_, owned_key(build->template_id, build->id),
                             *build);
        !st)
      return st;
  return write(batch);
}

status store::put_template_and_builds(const user_template& t,
                                     const std::vector<template_build>& builds) {
  rocksdb::WriteBatch batch;
  if (auto st = add_record(batch, templates_, owned_key(t.org_id, t.id), t); !st)
    return st;
  for (auto& b : builds)
    if (auto st = add_record(batch, template_builds_, owned_key(b.template_id, b.id), b); !st)
      return st;
  return write(batch);
}

result<std::vector<user_template>> store::user_templates(const std::string& org_id) const {
  std::vector<user_template> out;
  auto prefix = org_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, templates_)};
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    if (auto t = decode_record<user_template>(it->value().ToStringView()))
      out.push_back(std::move(*t));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
    return std::tie(a.created_ms, a.id) < std::tie(b.created_ms, b.id);
  });
  return walked(*it, std::move(out));
}

result<std::vector<user_template>> store::all_user_templates() const {
  std::vector<user_template> out;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, templates_)};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (auto t = decode_record<user_template>(it->value().ToStringView()))
      out.push_back(std::move(*t));
  return walked(*it, std::move(out));
}

result<std::optional<user_template>> store::find_user_template(const std::string& org_id,
                                                               const std::string& ref) const {
  using found = std::optional<user_template>;
  if (ref.empty())
    return found{};
  // By id first: an id that is there answers, even when its record does
  // not decode (another template's name must not stand in for it).
  auto raw = get(templates_, owned_key(org_id, ref));
  if (!raw)
    return raw.error();
  if (*raw)
    return found{decode_record<user_template>(**raw)};
  auto all = user_templates(org_id);
  if (!all)
    return all.error();
  for (auto& t : *all)
    if (t.name == ref)
      return found{std::move(t)};
  return found{};
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
  if (!it->status().ok()) // builds left behind would outlive their template
    return read_failure(it->status());
  return write(batch);
}

status store::put_template_build(const template_build& b) {
  return put_record(template_builds_, owned_key(b.template_id, b.id), b);
}

result<std::optional<template_build>>
store::find_template_build(const std::string& template_id, const std::string& build_id) const {
  return get_record<template_build>(template_builds_, owned_key(template_id, build_id));
}

result<std::vector<template_build>>
store::template_builds(const std::string& template_id) const {
  std::vector<template_build> out;
  auto prefix = template_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, template_builds_)};
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    if (auto b = decode_record<template_build>(it->value().ToStringView()))
      out.push_back(std::move(*b));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
    return std::tie(a.created_ms, a.id) > std::tie(b.created_ms, b.id);
  });
  return walked(*it, std::move(out));
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
  else if (!it->status().ok()) // from 0 would overwrite the first lines
    return read_failure(it->status());
  rocksdb::WriteBatch batch;
  for (auto& l : lines) {
    if (next >= cap && l.level != "error")
      continue;
    if (auto st = add_record(batch, build_logs_, prefix + be64(next++), l); !st)
      return st;
  }
  return write(batch, false);
}

result<std::vector<build_log_entry>>
store::build_logs(const std::string& build_id, size_t offset, size_t limit,
                  const std::function<bool(const build_log_entry&)>& keep) const {
  std::vector<build_log_entry> out;
  auto prefix = build_id + std::string(1, '\0');
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{}, build_logs_)};
  // Without a filter the offset is a position in the key space.
  it->Seek(keep ? prefix : prefix + be64(offset));
  size_t skipped = keep ? 0 : offset;
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
    auto l = decode_record<build_log_entry>(it->value().ToStringView());
    if (!l || (keep && !keep(*l)))
      continue;
    if (skipped < offset) {
      ++skipped;
      continue;
    }
    out.push_back(std::move(*l));
  }
  return walked(*it, std::move(out));
}

} // namespace sandboxd
