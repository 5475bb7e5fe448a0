#include "actors/registry.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "actors/blocking.hpp"
#include "actors/registry_volumes.hpp"
#include "actors/sandbox.hpp"
#include "actors/template_builder.hpp"
#include "actors/warm_pool.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "runtime/containers.hpp"
#include "runtime/templates.hpp"
#include "storage/store.hpp"

namespace sandboxd {

namespace {

struct registry_state {
  registry_config cfg;
  std::map<std::string, sandbox_record> records; // those not yet stopped
  std::map<std::string, sandbox_actor> live;     // those with an actor
  // The snapshot layers each live sandbox rests on (none: a catalogue
  // template's): a snapshot's removal checks them without a read.
  std::map<std::string, std::vector<std::string>> layers_of;
  // Per org, the newest `ended_kept` stopped sandboxes, oldest first (for
  // `GET /sandboxes?state=stopped`); an older one is rebuilt from its events
  // when asked for by id. Memory stays in proportion to the live sandboxes.
  std::map<std::string, std::deque<sandbox_record>> ended;
  // Per org, the running and paused sandboxes by (start time, id).
  std::map<std::string, std::set<std::pair<int64_t, std::string>>> listed;
  // Listed sandboxes' renderings (cfg.render), dropped when a record changes.
  std::unordered_map<std::string, std::string> rendered;
  // Per org: running sandboxes (X-Total-Running), live ones (the per-org
  // limit), and per template its spawn count; kept in step with `records`
  // so that no request walks them.
  std::map<std::string, uint64_t> running;
  std::map<std::string, size_t> live_of_org;
  std::map<std::string, std::map<std::string, template_usage>> usage;
  registry_stats stats{{}, {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, {}, 0, 0, 0, {}};
  // Sandboxes booted ahead for creates: neither records nor live (no API
  // sees them), counted against the host limit by `pool`.
  warm_pool pool;
  std::map<std::string, sandbox_actor> warm;
  // Sandboxes whose reconcile with their rejoined node found it not
  // answering: the delay before the next try (doubling, at most a minute).
  std::map<std::string, std::chrono::seconds> reconcile_retry;
  bool wake_pending = false; // a refill check is scheduled
  bool making_disk = false; // a disk is being made ahead (one at a time)
  // A drain that waits for the boot under way (shutdown must not leave it).
  std::function<void()> after_boot = [] {};
  static inline const char* name = "registry";
};

using self_ptr = registry_actor::stateful_pointer<registry_state>;

constexpr size_t ended_kept = 1000;

// Keeps a stopped sandbox among its org's newest ended ones.
void keep_ended(std::map<std::string, std::deque<sandbox_record>>& ended, sandbox_record&& rec) {
  auto& q = ended[rec.org_id];
  q.push_back(std::move(rec));
  if (q.size() > ended_kept)
    q.pop_front();
}

// Counts a sandbox of its template once (`first`), and its start time on
// every record (a new one's is set once it has started).
void count_usage(std::map<std::string, std::map<std::string, template_usage>>& usage,
                 const sandbox_record& rec, bool first = true) {
  auto& u = usage[rec.org_id][rec.template_id];
  u.count += first;
  u.last_ms = std::max(u.last_ms, rec.started_at_ms);
}

// What a sandbox is made from: a catalogue template, or one of the org's
// snapshots (its layers on the template it was taken from).
struct origin {
  template_spec base;
  std::optional<snapshot_info> snapshot;
  std::string name; // what the sandbox's alias shows, when not the base's or snapshot's
};

// A template defined in code (Template.build): its final layer on the
// template underneath, with the build's environment, start command and
// resources.
result<origin> code_origin(const template_catalog& catalog, const store& db,
                           const std::string& org, const template_spec& own) {
  auto base = catalog.find(own.extends);
  if (!base) {
    auto under = find_user_template_spec(db, org, own.extends);
    if (!under)
      return internal_error("template " + own.name + " rests on template " + own.extends
                            + ", which this server no longer has");
    if (!*under)
      return under->error();
    base = **under;
  }
  auto snap = db.find_snapshot(org, own.layers_snapshot);
  if (!snap)
    return snap.error();
  if (!*snap)
    return internal_error("the layers of template " + own.name + " (snapshot "
                          + own.layers_snapshot + ") are gone");
  auto merged = *base;
  merged.env = own.env;
  merged.start_cmd = own.start_cmd;
  merged.ready_port = own.ready_port;
  merged.cpu_count = own.cpu_count;
  merged.memory_mb = own.memory_mb;
  merged.default_user = own.default_user;
  merged.default_workdir = own.default_workdir;
  return origin{merged, **snap, own.aliases.empty() ? own.name : own.aliases.front()};
}

// Reads the store unless `template_id` is a catalogue template: called on
// the executor then (catalogue_origin first).
result<origin> resolve_origin(const template_catalog& catalog, const store& db,
                              const std::string& org, const std::string& template_id) {
  auto tpl = catalog.find(template_id);
  if (tpl)
    return origin{*tpl, std::nullopt, {}};
  // The org's own templates (POST /templates), by id or name: 409 while
  // the first build of one is under way.
  if (auto own = find_user_template_spec(db, org, template_id)) {
    if (!*own)
      return own->error();
    if (!(*own)->layers_snapshot.empty())
      return code_origin(catalog, db, org, **own);
    return origin{**own, std::nullopt, {}};
  }
  auto found = db.find_snapshot(org, template_id);
  if (!found)
    return found.error();
  auto& snap = *found;
  if (!snap)
    return tpl.error();
  auto base = catalog.find(snap->template_id);
  if (!base)
    if (auto own = find_user_template_spec(db, org, snap->template_id)) {
      if (!*own)
        return own->error();
      base = **own;
    }
  if (!base)
    return internal_error("snapshot " + snap->id + " rests on template " + snap->template_id
                          + ", which this server no longer has");
  return origin{*base, snap, {}};
}

// The origin of a sandbox of catalogue template `template_id`, without a
// read; nullopt when it names something else (an org's template or snapshot).
std::optional<origin> catalogue_origin(const template_catalog& catalog,
                                       const std::string& template_id) {
  if (auto tpl = catalog.find(template_id))
    return origin{*tpl, std::nullopt, {}};
  return std::nullopt;
}

// What replay finds: the live sandboxes' records, the newest ended ones and
// every one's template usage, and the containers on the host.
struct recovery_scan {
  std::map<std::string, sandbox_record> records;
  std::map<std::string, std::deque<sandbox_record>> ended;
  std::map<std::string, std::map<std::string, template_usage>> usage;
  std::vector<std::string> containers;
  std::vector<snapshot_info> hidden; // fork snapshots: gone once their forks are
  std::vector<std::string> orphan_layers; // on disk, owned by no snapshot in the store
  std::map<std::string, origin> origins; // of the live records (none: no longer resolvable)
};

result<recovery_scan> scan_for_recovery(const store& db, sandbox_runtime& rt,
                                        const template_catalog& catalog) {
  recovery_scan scan;
  auto replayed = db.replay([](const std::string& why) { spdlog::error("replay: {}", why); },
                            [&scan](sandbox_record&& rec) {
                              count_usage(scan.usage, rec);
                              keep_ended(scan.ended, std::move(rec));
                            });
  if (!replayed)
    return replayed.error(); // serving half a log would orphan what it left out
  scan.records = std::move(*replayed);
  auto ids = rt.list();
  if (!ids)
    return ids.error();
  scan.containers = std::move(*ids);
  // A layer no snapshot owns was left by a crash between a snapshot's
  // removal from the store and its files' (or its copy and its store write).
  // Only when every snapshot could be read: a layer is garbage only if no
  // snapshot owns it for certain.
  size_t unreadable = 0;
  auto snaps = db.all_snapshots(&unreadable);
  if (!snaps)
    return snaps.error();
  std::set<std::string> owned;
  for (auto& snap : *snaps) {
    owned.insert(snap.id);
    if (snap.hidden && !is_template_layer(snap))
      scan.hidden.push_back(std::move(snap));
  }
  std::error_code ec;
  if (unreadable == 0) {
    for (auto& entry : std::filesystem::directory_iterator(rt.layers_root(), ec))
      if (!owned.count(entry.path().filename().string()))
        scan.orphan_layers.push_back(entry.path().string());
  } else {
    spdlog::error("{} stored snapshots are unreadable: layers on disk are all kept", unreadable);
  }
  if (ec && ec != std::errc::no_such_file_or_directory)
    return internal_error("cannot list " + rt.layers_root() + ": " + ec.message());
  for (auto& [id, rec] : scan.records)
    if (!ended(rec)) {
      auto node = rec.ext.find(event_ext::node);
      // Before its reconcile asks the runtime.
      rt.adopt(id, node == rec.ext.end() ? std::string{} : node->second, rec.memory_mb);
    }
  for (auto& [id, rec] : scan.records)
    if (!ended(rec))
      if (auto o = resolve_origin(catalog, db, rec.org_id, rec.template_id))
        scan.origins.emplace(id, std::move(*o));
  return scan;
}

// Takes a stored record out of the listing index and the running count
// (before it is replaced or forgotten).
void unindex(registry_state& st, const sandbox_record& old) {
  st.listed[old.org_id].erase({old.started_at_ms, old.id});
  st.running[old.org_id] -= old.state == sandbox_state::running;
}

// Stores the newest record of a sandbox and keeps the listing index and the
// counters in step.
void put_record(self_ptr self, sandbox_record rec) {
  auto& st = self->state;
  auto old = st.records.find(rec.id);
  bool known = old != st.records.end();
  if (known)
    unindex(st, old->second);
  st.rendered.erase(rec.id);
  count_usage(st.usage, rec, !known);
  if (ended(rec)) {
    if (known)
      st.records.erase(old);
    keep_ended(st.ended, std::move(rec));
    return;
  }
  if (rec.state == sandbox_state::running || rec.state == sandbox_state::paused)
    st.listed[rec.org_id].insert({rec.started_at_ms, rec.id});
  st.running[rec.org_id] += rec.state == sandbox_state::running;
  st.records[rec.id] = std::move(rec);
}

// A fork's snapshot is hidden and only for its forks: once the last of them
// ended (and nothing stacks on it), it goes, files and all. The removal
// itself refuses while another sandbox or snapshot rests on it.
void remove_fork_snapshot(self_ptr self, const std::string& org, const std::string& id) {
  self->request(caf::actor_cast<registry_actor>(self), caf::infinite, atom::remove::value, org, id)
    .then([id](bool) { spdlog::info("fork snapshot {} removed: its forks ended", id); },
          [id](caf::error& e) {
            spdlog::debug("fork snapshot {} stays: {}", id, from_error(e).message);
          });
}

void forget_fork_snapshot(self_ptr self, const std::string& org, const std::string& template_id) {
  if (self->state.cfg.templates->find(template_id))
    return; // a catalogue template: most sandboxes, and no read
  auto db = self->state.cfg.db;
  run_blocking(
    self, false,
    [db, org, template_id]() -> result<std::optional<snapshot_info>> {
      return db->find_snapshot(org, template_id);
    },
    [=](result<std::optional<snapshot_info>> snap) {
      if (!snap)
        spdlog::warn("fork snapshot of {} stays: {}", template_id, snap.error().message);
      else if (*snap && (*snap)->hidden && !is_template_layer(**snap))
        remove_fork_snapshot(self, org, (*snap)->id);
    },
    lane::reclaim);
}

// A sandbox actor is live from its spawn until its record says stopped.
void add_live(self_ptr self, const sandbox_record& rec, sandbox_actor actor) {
  if (self->state.live.emplace(rec.id, std::move(actor)).second)
    ++self->state.live_of_org[rec.org_id];
}

void drop_live(self_ptr self, const std::string& id, const std::string& org) {
  if (self->state.live.erase(id))
    --self->state.live_of_org[org];
  self->state.layers_of.erase(id);
}

bool matches(const sandbox_record& r, const list_query& q) {
  if (!q.states.count(r.state))
    return false;
  if (!q.template_id.empty() && r.template_id != q.template_id && r.alias != q.template_id)
    return false;
  // Inclusive, as E2B: a sandbox started exactly at T is "started after" T.
  if (q.started_after_ms && r.started_at_ms < *q.started_after_ms)
    return false;
  return metadata_matches(r, q.metadata);
}

// Calls `visit(record)` for each item of the page `q` asks for, in order;
// true when more items follow.
template <class Visit>
bool walk_page(registry_state& st, const list_query& q, Visit visit) {
  auto& idx = st.listed[q.org];
  size_t n = 0;
  auto take = [&](auto first, auto last) {
    for (auto it = first; it != last; ++it) {
      auto& r = st.records[it->second];
      if (!matches(r, q))
        continue;
      if (n == q.limit)
        return true;
      visit(r);
      ++n;
    }
    return false;
  };
  if (q.ascending)
    return take(q.after ? idx.upper_bound(*q.after) : idx.begin(), idx.end());
  return take(std::make_reverse_iterator(q.after ? idx.lower_bound(*q.after) : idx.end()),
              idx.rend());
}

// A listed sandbox's rendering, made once per version of its record.
const std::string& rendering(registry_state& st, const sandbox_record& r) {
  auto [it, fresh] = st.rendered.try_emplace(r.id);
  if (fresh)
    it->second = st.cfg.render(r);
  return it->second;
}


// What sandbox `rec` made from `from` needs (no origin: a sandbox whose
// template or snapshot is gone, which its reconcile or start then reports).
sandbox_deps deps_for(self_ptr self, const sandbox_record& rec, const std::optional<origin>& from) {
  auto& cfg = self->state.cfg;
  sandbox_deps deps;
  deps.runtime = cfg.runtime;
  deps.db = cfg.db;
  deps.max_snapshots = cfg.max_snapshots_per_org;
  deps.log = cfg.log;
  deps.registry = self;
  if (auto& o = from) {
    deps.lower_rootfs = cfg.templates->rootfs(o->base);
    deps.base_template = o->base.name;
    deps.catalogue_template = !o->base.user;
    deps.start_cmd = o->base.start_cmd;
    deps.ready_port = o->base.ready_port;
    if (o->snapshot) {
      deps.layers = o->snapshot->layers;
      deps.layers_node = o->snapshot->node;
    }
  }
  if (!deps.layers.empty())
    self->state.layers_of[rec.id] = deps.layers;
  return deps;
}

// What a sandbox of catalogue template `tpl` has before any caller's
// choice: a warm sandbox is booted from exactly this, and a create starts
// from it, so nothing a warm sandbox shows can differ from a cold one.
sandbox_record template_record(const template_spec& tpl, const registry_config& cfg) {
  sandbox_record rec;
  rec.template_id = tpl.name;
  rec.alias = tpl.name;
  rec.env_vars = tpl.env;
  rec.cpu_count = tpl.cpu_count;
  rec.memory_mb = tpl.memory_mb;
  rec.disk_size_mb = cfg.disk_size_mb;
  rec.state = sandbox_state::creating;
  return rec;
}

// Removes warm sandbox `id` (nothing was logged for it), then `done`.
void remove_warm(self_ptr self, const std::string& id, std::function<void()> done = [] {}) {
  auto it = self->state.warm.find(id);
  if (it == self->state.warm.end())
    return done();
  auto actor = it->second;
  self->state.warm.erase(it);
  self->request(actor, caf::infinite, atom::remove::value)
    .then([done](bool) { done(); },
          [id, done](caf::error& e) {
            spdlog::error("warm sandbox {}: not removed: {}", id, from_error(e).message);
            done();
          });
}

// One metrics tick: every running sandbox sampled in one job on the
// executor and appended in one write (one job and one write per sandbox cost
// ~1 ms each at 1,000 idle sandboxes). The next tick is armed once this one
// is done, so ticks never pile up behind a slow host.
void sample_running(self_ptr self) {
  struct target {
    std::string id;
    int cpu, mem, disk;
  };
  auto& st = self->state;
  std::vector<target> targets;
  for (auto& [id, actor] : st.live)
    if (auto r = st.records.find(id);
        r != st.records.end() && r->second.state == sandbox_state::running)
      targets.push_back({id, r->second.cpu_count, r->second.memory_mb, r->second.disk_size_mb});
  auto again = [self] {
    self->delayed_send(self, self->state.cfg.metrics_interval, atom::sample::value);
  };
  if (targets.empty())
    return again();
  auto rt = st.cfg.runtime;
  auto db = st.cfg.db;
  run_blocking(
    self, false,
    [rt, db, targets]() -> status {
      std::vector<std::pair<std::string, container_sample>> got;
      got.reserve(targets.size());
      for (auto& t : targets) {
        // A sandbox stopped meanwhile has no cgroup: it is skipped.
        if (auto s = rt->sample(t.id, t.cpu, t.mem, t.disk))
          got.emplace_back(t.id, std::move(*s));
      }
      return db->append_metrics(got);
    },
    [again](status s) {
      if (!s)
        spdlog::warn("metrics: {}", s.error().message);
      again();
    });
}

// Makes the next disk the runtime keeps ready, if any, on the background
// lane: one at a time. Unlike a warm boot it may overlap a create (a copy
// and a mount, ~10 ms): each create takes one, and the next create should
// find one again. A failure waits for the next create to try again.
void make_disks(self_ptr self) {
  auto& st = self->state;
  auto rt = st.cfg.runtime;
  if (st.making_disk || !rt || !rt->disks_short())
    return;
  st.making_disk = true;
  run_blocking(
    self, false, [rt] { return rt->make_ready_disk(); },
    [self](status s) {
      self->state.making_disk = false;
      if (!s) {
        spdlog::warn("making a sandbox disk ahead: {}", s.error().message);
        return;
      }
      make_disks(self);
    },
    lane::reclaim);
}

// Boots the next warm sandbox the pool wants, if any, in the background:
// one at a time, never while a create is under way (warm_pool.hpp).
void refill(self_ptr self) {
  auto& st = self->state;
  auto& cfg = st.cfg;
  make_disks(self);
  auto bootable = [&](const std::string& name) {
    auto tpl = cfg.templates->find(name);
    return tpl && cfg.templates->is_built(*tpl);
  };
  auto name = st.pool.next(st.live.size(), cfg.max_sandboxes, now_ms(), bootable);
  if (!name) {
    // Look again later while short (a backoff, a template not built yet,
    // the host full); a create finishing looks at once.
    if (st.pool.short_of_target() && !st.pool.draining() && !st.wake_pending) {
      st.wake_pending = true;
      auto rest = st.pool.rests_for(now_ms());
      self->delayed_send(self, std::chrono::milliseconds(rest > 0 ? rest : 5000), atom::wake::value);
    }
    return;
  }
  // The caller's choices replace the template's at claim time.
  auto rec = template_record(*cfg.templates->find(*name), cfg);
  rec.id = new_sandbox_id();
  auto actor = spawn_sandbox(self->home_system(), rec,
                             deps_for(self, rec, catalogue_origin(*cfg.templates, *name)));
  st.pool.boot_started();
  auto id = rec.id;
  self->request(actor, caf::infinite, atom::prepare::value)
    .then(
      [=](bool) {
        auto& st = self->state;
        st.pool.boot_done(*name, id);
        st.warm.emplace(id, actor);
        if (st.pool.draining()) { // shutting down meanwhile: the drain waits for this one
          for (auto& w : st.pool.drain())
            remove_warm(self, w,
                        w == id ? std::exchange(st.after_boot, [] {}) : std::function<void()>{[] {}});
          return;
        }
        // Creates that came meanwhile may have filled the host.
        if (st.live.size() + st.pool.ready() > st.cfg.max_sandboxes)
          if (auto v = st.pool.give_way())
            remove_warm(self, *v);
        refill(self);
      },
      [=](caf::error& e) {
        std::exchange(self->state.after_boot, [] {})();
        self->state.pool.boot_failed(now_ms());
        spdlog::warn("warm pool: a sandbox of {} did not boot: {}", *name, from_error(e).message);
        refill(self);
      });
}

// A create once its origin is known: the capacity checks, a warm sandbox
// or a new one, and `rp` answered when it runs (or fails).
void create_from(self_ptr self, create_spec spec, origin from,
                 caf::typed_response_promise<sandbox_record> rp) {
  auto& cfg = self->state.cfg;
  auto tpl = std::optional<template_spec>{from.base};
  auto refuse = [&](failure f) { rp.deliver(to_error(f)); };
  if (!cfg.templates->is_built(*tpl)) {
    if (cfg.background_builds)
      if (auto why = cfg.background_builds->refusal(tpl->name))
        return refuse(*why);
    return refuse({503, "template " + tpl->name
                          + " is not built yet; run: sandboxd template build " + tpl->name});
  }
  if (self->state.live.size() >= cfg.max_sandboxes)
    return refuse({429, "sandbox limit reached (" + std::to_string(cfg.max_sandboxes)
                          + " running or paused sandboxes on this host)"});
  if (self->state.live_of_org[spec.org_id] >= cfg.max_sandboxes_per_org)
    return refuse({429, "sandbox limit reached (" + std::to_string(cfg.max_sandboxes_per_org)
                          + " running or paused sandboxes per org)"});
  auto rec = template_record(*tpl, cfg);
  rec.org_id = spec.org_id;
  if (from.snapshot)
    rec.template_id = from.snapshot->id;
  rec.alias = !spec.alias.empty() ? spec.alias
              : !from.name.empty() ? from.name
              : from.snapshot    ? public_id(*from.snapshot)
                                  : tpl->name;
  if (spec.alias.empty() && !from.snapshot && tpl->user && !tpl->aliases.empty())
    rec.alias = tpl->aliases.front(); // an org's own template: its name
  rec.idle_timeout_s = spec.idle_timeout_s;
  rec.max_end_ms = spec.max_lifetime_s * 1000; // a duration until `start`
  rec.metadata = std::move(spec.metadata);
  for (auto& [k, v] : spec.env_vars)
    rec.env_vars[k] = v;
  rec.timeout_s = spec.timeout_s;
  // Lifecycle options travel in `created` as named facts.
  if (spec.auto_pause)
    rec.ext[event_ext::on_timeout] = "pause";
  if (spec.auto_pause && !spec.auto_pause_memory)
    rec.ext[event_ext::keep_memory] = "false";
  if (spec.auto_resume)
    rec.ext[event_ext::auto_resume] = "true";
  for (auto& [k, v] : network_ext(spec.network))
    rec.ext[k] = v;
  if (!tpl->default_user.empty())
    rec.ext[event_ext::default_user] = tpl->default_user;
  if (!tpl->default_workdir.empty())
    rec.ext[event_ext::default_workdir] = tpl->default_workdir;
  for (auto& [k, v] : ingress_ext(spec.network))
    rec.ext[k] = v;
  auto& st = self->state;
  // A warm sandbox of the template when one is ready and nothing it
  // already runs could differ: a template's start command was started
  // without the caller's env vars.
  std::optional<std::string> warm_id;
  if (!spec.volumes.empty())
    rec.ext[event_ext::volumes] = encode_mounts(spec.volumes);
  if (!from.snapshot && !tpl->user && spec.volumes.empty()
      && (tpl->start_cmd.empty() || spec.env_vars.empty()))
    warm_id = st.pool.take(tpl->name);
  sandbox_actor actor;
  if (warm_id) {
    rec.id = *warm_id;
    actor = st.warm[*warm_id];
    st.warm.erase(*warm_id);
  } else {
    rec.id = new_sandbox_id();
    // Warm sandboxes give way to a create that needs their room.
    if (st.live.size() + st.pool.ready() + st.pool.booting() >= cfg.max_sandboxes)
      if (auto v = st.pool.give_way())
        remove_warm(self, *v);
    auto deps = deps_for(self, rec, from);
    deps.launch = std::move(spec.agent);
    actor = spawn_sandbox(self->home_system(), rec, std::move(deps));
  }
  put_record(self, rec);
  add_live(self, rec, actor);
  st.pool.create_started(now_ms());
  auto t0 = std::chrono::steady_clock::now();
  auto on_running = [=](sandbox_record& r) mutable {
    auto& s = self->state.stats;
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.latency_counts.resize(s.latency_bounds_s.size());
    for (size_t i = 0; i < s.latency_bounds_s.size(); ++i)
      s.latency_counts[i] += secs <= s.latency_bounds_s[i];
    s.latency_sum_s += secs;
    ++s.creates;
    rp.deliver(std::move(r));
    self->state.pool.create_done();
    refill(self);
  };
  auto on_failed = [=](caf::error& e) mutable {
    ++self->state.stats.create_failures;
    rp.deliver(e);
    self->state.pool.create_done();
    refill(self);
  };
  if (warm_id) {
    create_spec claim;
    claim.agent = std::move(spec.agent);
    self->request(actor, caf::infinite, atom::claim::value, rec, std::move(claim))
      .then(on_running, on_failed);
  } else {
    self->request(actor, caf::infinite, atom::start::value).then(on_running, on_failed);
  }
}

registry_actor::behavior_type registry_behavior(self_ptr self,
                                                registry_config cfg) {
  self->state.cfg = std::move(cfg);
  self->state.pool = warm_pool{self->state.cfg.warm_pool};
  self->delayed_send(self, self->state.cfg.metrics_interval, atom::sample::value);
  return {
    [=](atom::create, create_spec& spec) -> caf::result<sandbox_record> {
      auto& cfg = self->state.cfg;
      auto rp = self->make_response_promise<sandbox_record>();
      auto quick = catalogue_origin(*cfg.templates, spec.template_id);
      if (quick && spec.volumes.empty()) {
        create_from(self, std::move(spec), std::move(*quick), rp);
        return rp;
      }
      if (!spec.volumes.empty() && !cfg.volumes) {
        rp.deliver(to_error(failure{501, "this server keeps no volumes"}));
        return rp;
      }
      // An org's template or snapshot, its volumes: read on the executor,
      // the registry waiting for it (serialized) so no snapshot or volume
      // removal comes between.
      auto db = cfg.db;
      auto catalog = cfg.templates;
      auto org = spec.org_id;
      auto ref = spec.template_id;
      auto mounts = std::move(spec.volumes);
      using resolved = std::pair<origin, std::vector<volume_mount>>;
      run_blocking(
        self, true,
        [=]() -> result<resolved> {
          auto from = quick ? result<origin>{*quick} : resolve_origin(*catalog, *db, org, ref);
          if (!from)
            return from.error();
          auto vols = resolve_volumes(*db, org, mounts);
          if (!vols)
            return vols.error();
          return resolved{std::move(*from), std::move(*vols)};
        },
        [=, spec = std::move(spec)](result<resolved> got) mutable {
          if (!got)
            {
            rp.deliver(to_error(got.error()));
            return;
          }
          spec.volumes = std::move(got->second);
          create_from(self, std::move(spec), std::move(got->first), rp);
        });
      return rp;
    },
    [=](atom::create, atom::volume, const std::string& org,
        const std::string& name) -> caf::result<volume> {
      auto& cfg = self->state.cfg;
      if (!cfg.volumes)
        return to_error(failure{501, "this server keeps no volumes"});
      auto rp = self->make_response_promise<volume>();
      auto db = cfg.db;
      auto max = cfg.max_volumes_per_org;
      auto size = cfg.volume_size_mb;
      // Serialized: two creates of one name never both pass the check.
      run_blocking(
        self, true, [=] { return make_volume(*db, org, name, max, size); },
        [=](result<volume> v) mutable {
          if (!v)
            {
            rp.deliver(to_error(v.error()));
            return;
          }
          // Acknowledged once its event is durable too.
          self->request(self->state.cfg.log, caf::infinite, atom::append::value,
                        volume_event(event_type::volume_created, *v))
            .then([=, v = *v](event&) mutable { rp.deliver(v); },
                  [=](caf::error& e) mutable { rp.deliver(e); });
        });
      return rp;
    },
    [=](atom::remove, atom::volume, const std::string& org,
        const std::string& id) -> caf::result<bool> {
      auto& st = self->state;
      if (!st.cfg.volumes)
        return to_error(failure{501, "this server keeps no volumes"});
      for (auto& [sid, rec] : st.records) {
        if (ended(rec) || rec.org_id != org)
          continue;
        auto v = rec.ext.find(event_ext::volumes);
        if (v == rec.ext.end())
          continue;
        for (auto& m : decode_mounts(v->second))
          if (m.volume_id == id)
            return to_error(conflict("volume " + id + " is mounted in sandbox " + sid
                                     + "; kill the sandbox first"));
      }
      auto rp = self->make_response_promise<bool>();
      auto db = st.cfg.db;
      auto files = st.cfg.volumes;
      run_blocking(
        self, true, [=] { return drop_volume(*db, files.get(), org, id); },
        [=](result<volume> v) mutable {
          if (!v)
            {
            rp.deliver(to_error(v.error()));
            return;
          }
          self->request(self->state.cfg.log, caf::infinite, atom::append::value,
                        volume_event(event_type::volume_deleted, *v))
            .then([=](event&) mutable { rp.deliver(true); },
                  [=](caf::error& e) mutable { rp.deliver(e); });
        });
      return rp;
    },
    [=](atom::lookup, const std::string& org,
        const std::string& id) -> caf::result<sandbox_actor> {
      auto rec = self->state.records.find(id);
      auto live = self->state.live.find(id);
      if (rec == self->state.records.end() || rec->second.org_id != org
          || live == self->state.live.end())
        return to_error(not_found("sandbox not found"));
      return live->second;
    },
    [=](atom::get, const std::string& org, const std::string& id) -> caf::result<sandbox_record> {
      auto& st = self->state;
      if (auto rec = st.records.find(id); rec != st.records.end()) {
        if (rec->second.org_id != org)
          return to_error(not_found("sandbox not found"));
        return rec->second;
      }
      if (auto q = st.ended.find(org); q != st.ended.end())
        for (auto it = q->second.rbegin(); it != q->second.rend(); ++it)
          if (it->id == id)
            return *it;
      // Ended longer ago: its events say what it was.
      auto rp = self->make_response_promise<sandbox_record>();
      auto db = st.cfg.db;
      run_blocking(
        self, false,
        [db, id]() -> result<sandbox_record> {
          auto rec = db->replay_sandbox(id);
          if (!rec)
            return rec.error();
          if (!*rec)
            return not_found("sandbox not found");
          return std::move(**rec);
        },
        [=](result<sandbox_record> rec) mutable {
          if (!rec)
            rp.deliver(to_error(rec.error()));
          else if (rec->org_id != org)
            rp.deliver(to_error(not_found("sandbox not found")));
          else
            rp.deliver(std::move(*rec));
        },
        lane::reclaim);
      return rp;
    },
    [=](atom::lookup, const std::string& id) -> caf::result<sandbox_actor> {
      auto live = self->state.live.find(id);
      if (live == self->state.live.end())
        return to_error(not_found("sandbox not found"));
      return live->second;
    },
    [=](atom::remove, const std::string& org, const std::string& ref) -> caf::result<bool> {
      // Serialized (the registry takes no other message meanwhile, its
      // thread is free): no create can start on the snapshot between the
      // checks and its removal from the store. Its files go after.
      auto rp = self->make_response_promise<bool>();
      auto db = self->state.cfg.db;
      auto rt = self->state.cfg.runtime;
      run_blocking(
        self, true,
        [db, org, ref]() -> result<snapshot_info> {
          auto snap = db->find_snapshot(org, ref);
          if (!snap)
            return snap.error();
          if (!*snap)
            return not_found("snapshot " + ref + " not found");
          return std::move(**snap);
        },
        [=](result<snapshot_info> snap) mutable {
          if (!snap) {
            rp.deliver(to_error(snap.error()));
            return;
          }
          // Its own layer is the topmost; sandboxes and snapshots made from
          // it stack it under theirs.
          auto own = rt->layer_dir(snap->id);
          auto rests_on_it = [own](const std::vector<std::string>& layers) {
            return std::find(layers.begin(), layers.end(), own) != layers.end();
          };
          auto& st = self->state;
          for (auto& [id, actor] : st.live) {
            auto rec = st.records.find(id);
            if (rec == st.records.end() || rec->second.org_id != org)
              continue;
            auto layers = st.layers_of.find(id);
            if (refers_to(rec->second.template_id, *snap)
                || (layers != st.layers_of.end() && rests_on_it(layers->second))) {
              rp.deliver(to_error(conflict("snapshot " + public_id(*snap) + " is in use by sandbox "
                                           + id + "; kill it first")));
              return;
            }
          }
          run_blocking(
            self, true,
            [db, org, snap = *snap, rests_on_it]() -> result<bool> {
              auto stacked = db->snapshots(
                org, 1,
                [&](const snapshot_info& s) { return s.id != snap.id && rests_on_it(s.layers); },
                std::nullopt, nullptr);
              if (!stacked)
                return stacked.error();
              if (!stacked->empty())
                return conflict("snapshot " + public_id(stacked->front()) + " rests on snapshot "
                                + public_id(snap) + "; delete it first");
              if (auto st = db->delete_snapshot(snap); !st)
                return st.error();
              return true;
            },
            [=](result<bool> forgotten) mutable {
              if (!forgotten) {
                rp.deliver(to_error(forgotten.error()));
                return;
              }
              // A layer may hold a whole disk: the registry does not wait for it.
              run_blocking(
                self, false,
                [rt, snap = *snap]() -> result<bool> {
                  if (auto s = rt->remove_layer(snap.id, snap.node); !s)
                    return internal_error("snapshot forgotten, but its files stay: "
                                          + s.error().message);
                  return true;
                },
                deliver_to(rp));
            });
        });
      return rp;
    },
    [=](atom::list, const std::string& org) {
      std::vector<sandbox_record> out;
      auto& idx = self->state.listed[org];
      out.reserve(idx.size());
      for (auto it = idx.rbegin(); it != idx.rend(); ++it)
        out.push_back(self->state.records[it->second]);
      return out;
    },
    [=](atom::list, const std::string& org, atom::history) {
      std::vector<sandbox_record> out;
      for (auto& [id, rec] : self->state.records)
        if (rec.org_id == org)
          out.push_back(rec);
      if (auto q = self->state.ended.find(org); q != self->state.ended.end())
        out.insert(out.end(), q->second.begin(), q->second.end());
      std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
        return a.started_at_ms > b.started_at_ms;
      });
      return out;
    },
    [=](atom::stats, const std::string& org) { return self->state.usage[org]; },
    [=](atom::list, const list_query& q, atom::render) -> caf::result<rendered_page> {
      auto& st = self->state;
      if (!st.cfg.render)
        return to_error(internal_error("listings are not rendered here"));
      rendered_page page;
      page.total_running = st.running[q.org];
      page.json = "[";
      page.more = walk_page(st, q, [&](const sandbox_record& r) {
        if (page.json.size() > 1)
          page.json += ',';
        page.json += rendering(st, r);
        page.last = std::make_pair(r.started_at_ms, r.id);
      });
      page.json += ']';
      return page;
    },
    [=](atom::list) {
      std::vector<std::string> ids;
      for (auto& [id, actor] : self->state.live)
        ids.push_back(id);
      return ids;
    },
    [=](atom::update, sandbox_record& rec) {
      auto id = rec.id;
      if (ended(rec))
        forget_fork_snapshot(self, rec.org_id, rec.template_id);
      if (rec.state == sandbox_state::error && rec.last_seq == 0) {
        // Never created: nothing was logged, so it is neither listed nor counted.
        auto& st = self->state;
        if (auto old = st.records.find(id); old != st.records.end()) {
          unindex(st, old->second);
          --st.usage[old->second.org_id][old->second.template_id].count;
          st.rendered.erase(id);
          st.records.erase(old);
        }
        drop_live(self, id, rec.org_id);
        return;
      }
      if (ended(rec))
        drop_live(self, id, rec.org_id);
      put_record(self, std::move(rec));
    },
    [=](atom::lost, const std::string& node, const std::vector<std::string>& ids) {
      spdlog::error("node {} lost with {} sandboxes", node, ids.size());
      for (auto& id : ids)
        if (auto it = self->state.live.find(id); it != self->state.live.end())
          self->send(it->second, atom::lost::value);
    },
    [=](atom::reconcile, const std::string& node, const std::vector<std::string>& ids) {
      spdlog::info("node {}: reconciling {} sandboxes", node, ids.size());
      for (auto& id : ids) {
        auto it = self->state.live.find(id);
        if (it == self->state.live.end()) {
          self->state.reconcile_retry.erase(id);
          continue;
        }
        self->request(it->second, caf::infinite, atom::reconcile::value)
          .then([=](const sandbox_record&) { self->state.reconcile_retry.erase(id); },
                [=](caf::error& e) {
                  auto f = from_error(e);
                  if (f.status != 503) {
                    self->state.reconcile_retry.erase(id);
                    spdlog::warn("sandbox {}: reconcile: {}", id, f.message);
                    return;
                  }
                  // The node went silent or away again: try later, until
                  // it answers or its loss ends the sandbox.
                  auto& wait = self->state.reconcile_retry[id];
                  wait = std::min<std::chrono::seconds>(
                    wait.count() == 0 ? std::chrono::seconds(2) : wait * 2,
                    std::chrono::seconds(60));
                  spdlog::warn("sandbox {}: reconcile: {}; again in {} s", id, f.message,
                               wait.count());
                  self->delayed_send(self, wait, atom::reconcile::value, node,
                                     std::vector<std::string>{id});
                });
      }
    },
    [=](atom::stats) {
      auto s = self->state.stats;
      s.latency_counts.resize(s.latency_bounds_s.size());
      s.by_state = {{"running", 0}, {"paused", 0}};
      for (auto& [id, _] : self->state.live)
        ++s.by_state[to_string(self->state.records[id].state)];
      s.warm = self->state.pool.ready_by_template();
      if (self->state.cfg.runtime)
        s.ready_disks = self->state.cfg.runtime->ready_disks();
      return s;
    },
    [=](atom::wake) {
      self->state.wake_pending = false;
      refill(self);
    },
    [=](atom::sample) {
      sample_running(self);
    },
    [=](atom::drain) -> caf::result<uint64_t> {
      auto& st = self->state;
      auto ids = st.pool.drain();
      // A warm sandbox still booting is removed once booted (or failed).
      size_t n = ids.size() + (st.pool.booting() ? 1 : 0);
      if (n == 0)
        return uint64_t{0};
      auto rp = self->make_response_promise<uint64_t>();
      auto pending = std::make_shared<size_t>(n);
      auto one = [=]() mutable {
        if (--*pending == 0)
          rp.deliver(static_cast<uint64_t>(n));
      };
      for (auto& id : ids)
        remove_warm(self, id, one);
      if (st.pool.booting())
        st.after_boot = one;
      return rp;
    },
    [=](atom::recover) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      auto db = self->state.cfg.db;
      auto rt = self->state.cfg.runtime;
      run_blocking(
        self, true,
        [db, rt, catalog = self->state.cfg.templates] {
          return scan_for_recovery(*db, *rt, *catalog);
        },
        [=](result<recovery_scan> scan) mutable {
          if (!scan) {
            rp.deliver(to_error(scan.error()));
            return;
          }
          std::set<std::string> owned;
          std::vector<sandbox_actor> to_reconcile;
          self->state.usage = std::move(scan->usage); // the ended ones'; put_record adds the live
          self->state.ended = std::move(scan->ended);
          for (auto& [id, rec] : scan->records) {
            if (!ended(rec)) {
              owned.insert(id);
              auto o = scan->origins.find(id);
              auto actor = spawn_sandbox(
                self->home_system(), rec,
                deps_for(self, rec,
                         o == scan->origins.end() ? std::nullopt
                                                  : std::optional<origin>{o->second}));
              add_live(self, rec, actor);
              to_reconcile.push_back(actor);
            }
            put_record(self, std::move(rec)); // a long log holds many: never two copies
          }
          scan->records.clear();
          // Containers in our own state root that no live sandbox owns.
          for (auto& id : scan->containers) {
            if (owned.count(id))
              continue;
            spdlog::warn("removing container {}: no live sandbox owns it", id);
            run_blocking(self, false, [rt, id] { return rt->destroy(id); },
                         [id](status s) {
                           if (!s)
                             spdlog::error("cannot remove {}: {}", id,
                                           s.error().message);
                         });
          }
          for (auto& dir : scan->orphan_layers) {
            spdlog::warn("removing snapshot layer {}: no snapshot owns it", dir);
            run_blocking(
              self, false,
              [dir]() -> status {
                std::error_code ec;
                std::filesystem::remove_all(dir, ec);
                if (ec)
                  return internal_error("cannot remove " + dir + ": " + ec.message());
                return success();
              },
              [](status s) {
                if (!s)
                  spdlog::error("{}", s.error().message);
              },
              lane::reclaim);
          }
          refill(self); // the warm pool starts filling beside the reconcile
          // Serving starts now: each actor's reconcile is first in its
          // mailbox (sent before any request can find it here), so a request
          // for a sandbox waits behind that sandbox's reconcile only.
          rp.deliver(static_cast<uint64_t>(to_reconcile.size()));
          // Fork snapshots whose forks ended while the server was down (or
          // before it could remove them): each goes unless something rests
          // on it. After the reconcile, which may end forks itself.
          auto sweep = [=, hidden = std::move(scan->hidden)] {
            for (auto& snap : hidden)
              remove_fork_snapshot(self, snap.org_id, snap.id);
          };
          if (to_reconcile.empty())
            return sweep();
          auto pending = std::make_shared<size_t>(to_reconcile.size());
          auto total = to_reconcile.size();
          auto since = std::chrono::steady_clock::now();
          for (auto& actor : to_reconcile) {
            auto finish = [=]() mutable {
              if (--*pending != 0)
                return;
              spdlog::info("reconciled {} live sandboxes in {} ms; {} still live", total,
                           std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - since).count(),
                           self->state.live.size());
              sweep();
            };
            self->request(actor, caf::infinite, atom::reconcile::value)
              .then([=](sandbox_record&) mutable { finish(); },
                    [=](caf::error&) mutable { finish(); });
          }
        });
      return rp;
    },
  };
}

} // namespace

registry_actor spawn_registry(caf::actor_system& sys, registry_config cfg) {
  return sys.spawn(registry_behavior, std::move(cfg));
}

} // namespace sandboxd
