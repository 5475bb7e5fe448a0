// The durable store: a RocksDB database with one column family per kind of
// record. A small public API in front of it, in the manner of RocksDB's own:
// callers never see column families or key encodings.
//
//   events             seq (u64 BE)              → event (cereal, core/event.hpp)
//   events_by_org      org | seq                 → ∅
//   events_by_sandbox  sandbox | seq             → ∅
//   orgs               name                      → org id
//   api_keys           sha256(key)               → org id
//   meta               "secret", "head_hash",
//                      "drained_nodes", "checkpoint",
//                      "record_format", counts   → value
//   webhooks           webhook id                → webhook
//   webhook_cursors    webhook id                → last seq handled
//   deliveries         webhook id | seq          → delivery
//   logs               sandbox | time | n        → log line; not synced
//   metrics            sandbox | time            → sample; not synced
//   snapshots, templates, template_builds,
//   template_build_logs, volumes, secrets        → their records
//
// Records other than events are written by storage/record_codec.hpp (their
// types' inspect, in CAF's binary form); records of older versions are
// rewritten so when the store opens (store_upgrade.cpp).
//
// Every append is one WriteBatch with the WAL synced: when append returns,
// the event survives a crash. Events form a hash chain (core/event.hpp); the
// head's hash is kept in `meta` within the same batch.
//
// A read that fails (I/O error, corruption under a walk) is a 503 failure,
// never a shorter list or an absent value: a caller would take it for the
// truth (answer 404, or create something over what it could not read).
// Values whose bytes do not decode are skipped, as each function says.
//
// One class, its implementation split by concern (as RocksDB splits DBImpl):
// store.cpp (open, close, raw reads and writes), store_event_log.cpp,
// store_accounts.cpp, store_webhooks.cpp, store_telemetry.cpp (logs,
// metrics), store_artifacts.cpp (snapshots, templates, builds), store_org_data.cpp
// (volumes, secrets); key
// encodings shared between them in store_detail.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/event.hpp"
#include "core/sandbox.hpp"
#include "core/webhook.hpp"
#include "core/result.hpp"
#include "core/sample.hpp"
#include "core/snapshot.hpp"
#include "core/user_template.hpp"
#include "core/secret.hpp"
#include "core/volume.hpp"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
class Iterator;
} // namespace rocksdb

namespace sandboxd {

class store {
public:
  /// Opens (creating if needed) the database in `dir`. Fails if another
  /// process holds it.
  static result<std::unique_ptr<store>> open(const std::string& dir);

  /// Opens an existing database for reading only, as a RocksDB secondary
  /// instance caught up with the writer as of now: safe beside a running
  /// server (auditors, `sandboxd audit`). Never writes to `dir`.
  static result<std::unique_ptr<store>> open_secondary(const std::string& dir);

  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // -- event log ------------------------------------------------------------

  /// Assigns the next sequence numbers and durably appends the events (one
  /// synced batch for all of them). Returns them with `seq` filled in.
  result<std::vector<event>> append(std::vector<event> events);

  /// The sequence number of the newest event (0 for an empty log).
  uint64_t last_seq() const;
  /// RocksDB's estimate of the event log's live bytes (events and indexes).
  uint64_t event_log_bytes() const;

  /// The chain's head: the newest sequence number and its hash, for an
  /// auditor to pin.
  struct chain_head {
    uint64_t seq = 0;
    std::string hash;
  };
  chain_head head() const;

  /// Where the retained log begins: the last event compaction dropped (its
  /// seq and hash, which the next event links to) and the sandboxes still
  /// alive at that point. Signed with the install secret.
  struct checkpoint {
    uint64_t seq = 0;
    std::string hash;
    int64_t at_ms = 0;
    std::vector<sandbox_record> sandboxes;
    std::string signature;
  };
  /// Nullopt when no checkpoint was written; a failure when it cannot be read.
  result<std::optional<checkpoint>> load_checkpoint() const;

  /// Drops events older than `cutoff_ms` (never the newest one), folding
  /// them into a new checkpoint. Returns how many were dropped.
  result<uint64_t> compact(int64_t cutoff_ms);

  /// The sandboxes as the retained log rebuilds them: the checkpoint's
  /// snapshot with every later event folded in. `on_bad` hears of events
  /// that do not apply or do not decode. With `on_ended`, a sandbox is
  /// handed to it when its `killed` event is folded in and left out of the
  /// result: a long log then costs memory for the live sandboxes only.
  /// Fails when the log cannot be read to its end (never a partial result:
  /// a sandbox missing from it would be taken for one that never was).
  result<std::map<std::string, sandbox_record>>
  replay(const std::function<void(const std::string&)>& on_bad = {},
         const std::function<void(sandbox_record&&)>& on_ended = {}) const;

  /// One sandbox as its retained events rebuild it (from its index, with
  /// the checkpoint's snapshot if it was alive there); nullopt when the
  /// log holds nothing of it.
  result<std::optional<sandbox_record>> replay_sandbox(const std::string& sandbox_id) const;

  /// Walks the whole chain and reports the first broken link, if any.
  struct verify_report {
    uint64_t checked = 0;
    bool ok = true;
    uint64_t broken_seq = 0;
    std::string broken_id; // empty when the bytes do not even decode
    std::string reason;
  };
  verify_report verify() const;

  /// Calls `f` for each event with seq ≥ `from`, in order, until it returns
  /// false. Undecodable entries are reported through `on_corrupt`; a failure
  /// means the log could not be read (an I/O error), not that it ended.
  status scan(uint64_t from, const std::function<bool(const event&)>& f,
            const std::function<void(uint64_t seq)>& on_corrupt = {}) const;

  /// The events of one sandbox, oldest first (served from its index).
  [[nodiscard]] result<std::vector<event>> events_of_sandbox(const std::string& sandbox_id) const;

  /// A page of an org's (or, with `sandbox_id`, one sandbox's) events from
  /// the per-org index: skips `offset` matches, returns at most `limit`,
  /// oldest first when `ascending`. `types` empty means every type.
  struct event_query {
    std::string org_id;
    std::string sandbox_id;
    size_t offset = 0;
    size_t limit = 10;
    bool ascending = false;
    std::vector<event_type> types;
    // Resume after this sequence number (in the query's order): a cursor
    // that stays put while new events are appended.
    std::optional<uint64_t> after_seq;
  };
  /// At most `limit` events; `more` tells whether others follow.
  [[nodiscard]] result<std::vector<event>> query_events(const event_query& q,
                                                        bool* more = nullptr) const;

  // -- orgs and API keys ----------------------------------------------------

  /// The id of org `name`, creating it on first use.
  result<std::string> ensure_org(const std::string& name);

  /// Creates a new key `e2b_` + 40 hex for org `name` (creating the org) and
  /// stores only its SHA-256. Returns the plaintext key.
  result<std::string> create_key(const std::string& org_name);

  /// The org id owning `key`, if any.
  result<std::optional<std::string>> org_of_key(const std::string& key) const;

  /// True once any key exists (first-start bootstrap).
  [[nodiscard]] result<bool> has_keys() const;

  /// The event at `seq`; nullopt when it is not stored or does not decode.
  result<std::optional<event>> event_at(uint64_t seq) const;

  // -- webhooks -------------------------------------------------------------

  status put_webhook(const webhook& w);
  result<std::optional<webhook>> find_webhook(const std::string& id) const;
  /// The webhooks of `org_id`, or of every org when empty.
  [[nodiscard]] result<std::vector<webhook>> webhooks(const std::string& org_id = "") const;
  /// Removes the webhook with its cursor and deliveries.
  status delete_webhook(const std::string& id);

  /// The last sequence number a webhook is done with (delivered, given up
  /// on, or not for it).
  result<uint64_t> webhook_cursor(const std::string& id) const;
  status set_webhook_cursor(const std::string& id, uint64_t seq);

  status put_delivery(const delivery& d);
  result<std::optional<delivery>> find_delivery(const std::string& webhook_id,
                                               uint64_t seq) const;
  /// A webhook's deliveries, newest first, before `before_seq` when given;
  /// `keep` filters; `more` tells whether others follow.
  [[nodiscard]] result<std::vector<delivery>>
  deliveries(const std::string& webhook_id, std::optional<uint64_t> before_seq, size_t limit,
             const std::function<bool(const delivery&)>& keep, bool* more) const;

  // -- sandbox logs -----------------------------------------------------------

  struct log_line {
    int64_t timestamp_ms = 0;
    std::string stream; // stdout, stderr, system
    std::string line;
  };
  /// Appends to a sandbox's log, dropping its oldest lines beyond `cap`. Not
  /// synced: logs are output, not audit records.
  status append_logs(const std::string& sandbox_id, const std::vector<log_line>& lines,
                     size_t cap = 10000);
  /// The newest `limit` lines at or after `since_ms`, oldest first.
  [[nodiscard]] result<std::vector<log_line>> logs(const std::string& sandbox_id, size_t limit,
                                                   int64_t since_ms) const;
  /// Up to `limit` lines that `keep` accepts, walking from `cursor_ms` (the
  /// oldest line when forward, the newest when backward, if not given)
  /// in that direction; returned in walking order.
  [[nodiscard]] result<std::vector<log_line>>
  logs_page(const std::string& sandbox_id, std::optional<int64_t> cursor_ms, bool forward,
            size_t limit, const std::function<bool(const log_line&)>& keep) const;

  // -- sandbox metrics --------------------------------------------------------

  /// Appends one sample to a sandbox's history, keeping the newest `cap`.
  /// Not synced: a lost sample is a gap in a graph.
  status append_metric(const std::string& sandbox_id, const container_sample& s,
                       size_t cap = 720);
  /// The same for many sandboxes at once (a metrics tick): one write.
  status append_metrics(const std::vector<std::pair<std::string, container_sample>>& samples,
                        size_t cap = 720);
  /// Samples taken in [start_ms, end_ms], oldest first.
  [[nodiscard]] result<std::vector<container_sample>>
  metrics(const std::string& sandbox_id, int64_t start_ms, int64_t end_ms) const;
  /// The newest sample, if any.
  [[nodiscard]] result<std::optional<container_sample>>
  latest_metric(const std::string& sandbox_id) const;

  // -- snapshots --------------------------------------------------------------

  status put_snapshot(const snapshot_info& s);
  /// Forgets snapshot `s` (its files are the caller's to remove).
  status delete_snapshot(const snapshot_info& s);
  /// The org's snapshots, newest first, with `keep` deciding; `more` tells
  /// whether others follow after `limit`. `before` resumes after a cursor.
  [[nodiscard]] result<std::vector<snapshot_info>>
  snapshots(const std::string& org_id, size_t limit,
            const std::function<bool(const snapshot_info&)>& keep,
            const std::optional<std::string>& before, bool* more) const;
  /// Every org's snapshots, for the sweeps at start (forks' hidden ones whose
  /// forks ended; layers on disk that no snapshot owns).
  /// A failure when they cannot all be read; `unreadable` counts entries that
  /// do not decode (whose layers must then not be taken for garbage).
  [[nodiscard]] result<std::vector<snapshot_info>>
  all_snapshots(size_t* unreadable = nullptr) const;
  /// The org's newest snapshot that `ref` names (id or name, tagged or not).
  [[nodiscard]] result<std::optional<snapshot_info>> find_snapshot(const std::string& org_id,
                                                                   const std::string& ref) const;
  /// The org's newest snapshot `keep` takes.
  [[nodiscard]] result<std::optional<snapshot_info>>
  find_snapshot_if(const std::string& org_id,
                   const std::function<bool(const snapshot_info&)>& keep) const;
  /// A snapshot's cursor for `snapshots(before=...)`.
  static std::string snapshot_cursor(const snapshot_info& s);

  // -- an org's own templates (POST /templates) ------------------------------
  //   templates            org | template id       → template
  //   template_builds      template id | build id  → build
  //   template_build_logs  build id | n (u64 BE)   → progress line; not synced

  /// Stores the template, and with it `build` when given, in one synced batch.
  status put_user_template(const user_template& t,
                           const std::optional<template_build>& build = std::nullopt);
  /// Stores the template with several of its builds in one synced batch (a
  /// tag moving from one build to another changes both).
  status put_template_and_builds(const user_template& t, const std::vector<template_build>& builds);
  /// The org's templates, oldest first.
  [[nodiscard]] result<std::vector<user_template>> user_templates(const std::string& org_id) const;
  /// Every org's templates (recovery after a restart).
  [[nodiscard]] result<std::vector<user_template>> all_user_templates() const;
  /// The org's template whose id or name is `ref`; nullopt when it has
  /// none (or its bytes do not decode), a failure when it cannot be read.
  [[nodiscard]] result<std::optional<user_template>>
  find_user_template(const std::string& org_id, const std::string& ref) const;
  /// Removes the template with its builds and their progress lines.
  status delete_user_template(const user_template& t);
  status put_template_build(const template_build& b);
  /// Nullopt when absent (or undecodable), a failure when unreadable.
  [[nodiscard]] result<std::optional<template_build>>
  find_template_build(const std::string& template_id, const std::string& build_id) const;
  /// A template's builds, newest first.
  [[nodiscard]] result<std::vector<template_build>>
  template_builds(const std::string& template_id) const;
  /// Appends progress lines to a build's log. Past `cap` lines only error
  /// lines are kept. Not synced: progress, not records.
  status append_build_logs(const std::string& build_id, const std::vector<build_log_entry>& lines,
                           size_t cap = 10000);
  /// The build's lines that `keep` accepts (all when empty), skipping the
  /// first `offset` of them, at most `limit`, oldest first.
  [[nodiscard]] result<std::vector<build_log_entry>>
  build_logs(const std::string& build_id, size_t offset, size_t limit,
             const std::function<bool(const build_log_entry&)>& keep = {}) const;

  // -- volumes ----------------------------------------------------------------
  //   volumes              volume id               → volume

  /// Stores (creates or replaces) the volume's record, synced.
  status put_volume(const volume& v);
  /// Nullopt when absent (or undecodable), a failure when unreadable.
  [[nodiscard]] result<std::optional<volume>> find_volume(const std::string& id) const;
  /// The org's volumes (every org's when empty), oldest first.
  [[nodiscard]] result<std::vector<volume>> volumes(const std::string& org_id = "") const;
  status delete_volume(const std::string& id);

  // -- secrets ----------------------------------------------------------------
  //   secrets              secret id               → record, values sealed

  status put_secret(const secret_record& s);
  /// The org's secret whose id or (canonical) name is `ref`.
  [[nodiscard]] result<std::optional<secret_record>> find_secret(const std::string& org_id,
                                                                 const std::string& ref) const;
  /// The org's secrets, oldest first.
  [[nodiscard]] result<std::vector<secret_record>> secrets(const std::string& org_id) const;
  status delete_secret(const std::string& id);

  // -- server metadata ------------------------------------------------------

  /// A random secret created on first open; derives envd access tokens.
  const std::string& secret() const {
    return secret_;
  }

  /// The cluster nodes an operator drained (sandboxd worker drain): they
  /// stay drained across restarts. Replaced as a whole.
  [[nodiscard]] status put_drained_nodes(const std::set<std::string>& nodes);
  [[nodiscard]] result<std::set<std::string>> drained_nodes() const;

private:
  store() = default;
  /// Nullopt when the key is absent; a failure when it cannot be read.
  result<std::optional<std::string>> get(rocksdb::ColumnFamilyHandle* cf,
                                         const std::string& key) const;
  result<std::optional<event>> indexed_event(const rocksdb::Iterator& it, size_t prefix) const;

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_org_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_sandbox_ = nullptr;
  rocksdb::ColumnFamilyHandle* orgs_ = nullptr;
  rocksdb::ColumnFamilyHandle* keys_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* webhooks_ = nullptr;
  rocksdb::ColumnFamilyHandle* cursors_ = nullptr;
  rocksdb::ColumnFamilyHandle* deliveries_ = nullptr;
  rocksdb::ColumnFamilyHandle* logs_ = nullptr;
  rocksdb::ColumnFamilyHandle* metrics_ = nullptr;
  rocksdb::ColumnFamilyHandle* snapshots_ = nullptr;
  rocksdb::ColumnFamilyHandle* templates_ = nullptr;
  rocksdb::ColumnFamilyHandle* template_builds_ = nullptr;
  rocksdb::ColumnFamilyHandle* build_logs_ = nullptr;
  rocksdb::ColumnFamilyHandle* volumes_ = nullptr;
  rocksdb::ColumnFamilyHandle* secrets_ = nullptr;
  std::mutex build_logs_mtx_; // serializes a build's line count
  std::mutex logs_mtx_; // serializes a sandbox's line count
  std::mutex metrics_mtx_; // serializes the rings' counts (a tick and a first sample may meet)
  // A synced write of one key, and a batch write: synced (WAL fsynced before
  // it returns) unless it holds output rather than records (logs, samples).
  status put(rocksdb::ColumnFamilyHandle* cf, const std::string& key, const std::string& value);
  status write(rocksdb::WriteBatch& batch, bool sync = true);
  // A record under `key`, in storage/record_codec.hpp's form (defined in
  // store_detail.hpp); get_record gives nullopt for one that does not decode.
  template <class T>
  status put_record(rocksdb::ColumnFamilyHandle* cf, const std::string& key, const T& x);
  template <class T>
  result<std::optional<T>> get_record(rocksdb::ColumnFamilyHandle* cf,
                                      const std::string& key) const;
  // Rewrites records of older versions in the current form (store_upgrade.cpp).
  status upgrade_records();
  // The HMAC a checkpoint carries: over its record with the signature empty.
  result<std::string> checkpoint_signature(checkpoint c) const;
  static result<std::unique_ptr<store>> open_impl(const std::string& dir, bool read_only);

  mutable std::mutex append_mtx_; // serializes sequence assignment
  uint64_t last_seq_ = 0;
  std::string last_hash_;
  std::string secret_;
  std::string secondary_dir_; // a secondary's own directory, removed on close
};

// As stored (storage/record_codec.hpp): the checkpoint's signature is over
// its encoding with the signature left empty.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store::checkpoint& x) {
  return f(caf::meta::type_name("checkpoint"), x.seq, x.hash, x.at_ms, x.sandboxes,
           x.signature);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store::log_line& x) {
  return f(caf::meta::type_name("log_line"), x.timestamp_ms, x.stream, x.line);
}

} // namespace sandboxd
