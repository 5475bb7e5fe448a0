// Every actor's typed interface, in one place. One comment per message.
//
//   http ──▶ registry ──▶ sandbox ──▶ runtime (crun + agent)
//                              └────▶ event_log (RocksDB, synced)
//
// Message payloads are plain data from core/, each with a CAF `inspect`
// beside its definition so the actors could be spread over nodes (CAF's
// middleman); add_message_types announces them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/agent_messages.hpp"
#include "actors/blocking_job.hpp"
#include "core/event.hpp"
#include "core/result.hpp"
#include "core/sandbox.hpp"
#include "core/snapshot.hpp"
#include "core/user_template.hpp"
#include "core/webhook.hpp"
#include "runtime/containers.hpp"

namespace sandboxd {

/// The reply to connect: the sandbox and whether it had to be resumed.
struct connect_result {
  sandbox_record sandbox;
  bool resumed = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, connect_result& x) {
  return f(caf::meta::type_name("connect_result"), x.sandbox, x.resumed);
}

/// A page of the v2 listing: the org's running or paused sandboxes matching
/// the filters, by start time then id, after the cursor.
struct list_query {
  std::string org;
  std::set<sandbox_state> states;               // of running, paused
  std::map<std::string, std::string> metadata;  // all must match
  std::string template_id;                      // name or alias; empty: any
  std::optional<int64_t> started_after_ms;
  bool ascending = false;
  size_t limit = 100;
  std::optional<std::pair<int64_t, std::string>> after; // the cursor
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, list_query& x) {
  return f(caf::meta::type_name("list_query"), x.org, x.states, x.metadata,
           x.template_id, optional_field(x.started_after_ms), x.ascending, x.limit,
           optional_field(x.after));
}

/// A page as the API shows it: the items' renderings
/// (registry_config::render) joined into one JSON array, each kept by the
/// registry until its sandbox changes, so a listing copies text only.
struct rendered_page {
  std::string json;           // "[...]"
  bool more = false;          // another page follows
  uint64_t total_running = 0; // the org's running sandboxes, all filters aside
  std::optional<std::pair<int64_t, std::string>> last; // the last item's (start, id)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rendered_page& x) {
  return f(caf::meta::type_name("rendered_page"), x.json, x.more, x.total_running,
           optional_field(x.last));
}

/// How often an org started sandboxes from one template (spawnCount,
/// lastSpawnedAt), kept as counters so no listing walks the history.
struct template_usage {
  uint64_t count = 0;
  int64_t last_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, template_usage& x) {
  return f(caf::meta::type_name("template_usage"), x.count, x.last_ms);
}

/// What the registry counts for operators (the Prometheus endpoint).
struct registry_stats {
  std::map<std::string, uint64_t> by_state;   // live sandboxes: running, paused
  std::vector<double> latency_bounds_s;       // create latency histogram buckets
  std::vector<uint64_t> latency_counts;       // cumulative, one per bound
  double latency_sum_s = 0;
  uint64_t creates = 0;                       // successful creates observed
  uint64_t create_failures = 0;
  std::map<std::string, uint64_t> warm;      // per template: warm sandboxes ready
  uint64_t ready_disks = 0;                   // sandbox disks made ahead
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, registry_stats& x) {
  return f(caf::meta::type_name("registry_stats"), x.by_state, x.latency_bounds_s,
           x.latency_counts, x.latency_sum_s, x.creates, x.create_failures, x.warm,
           x.ready_disks);
}

namespace atom {
using append = caf::atom_constant<caf::atom("append")>;
using start = caf::atom_constant<caf::atom("start")>;
using reconcile = caf::atom_constant<caf::atom("reconcile")>;
using render = caf::atom_constant<caf::atom("render")>;
using get = caf::atom_constant<caf::atom("get")>;
using pause = caf::atom_constant<caf::atom("pause")>;
using connect = caf::atom_constant<caf::atom("connect")>;
using kill = caf::atom_constant<caf::atom("kill")>;
using timeout = caf::atom_constant<caf::atom("timeout")>;
using agent = caf::atom_constant<caf::atom("agent")>;
using exec = caf::atom_constant<caf::atom("exec")>;
using metrics = caf::atom_constant<caf::atom("metrics")>;
using expire = caf::atom_constant<caf::atom("expire")>;
using create = caf::atom_constant<caf::atom("create")>;
using lookup = caf::atom_constant<caf::atom("lookup")>;
using list = caf::atom_constant<caf::atom("list")>;
using update = caf::atom_constant<caf::atom("update")>;
using recover = caf::atom_constant<caf::atom("recover")>;
using run = caf::atom_constant<caf::atom("run")>;
using done = caf::atom_constant<caf::atom("done")>;
using wait = caf::atom_constant<caf::atom("wait")>;
using endpoint = caf::atom_constant<caf::atom("endpoint")>;
using relay = caf::atom_constant<caf::atom("relay")>;
using frame = caf::atom_constant<caf::atom("frame")>;
using ack = caf::atom_constant<caf::atom("ack")>;
using wake = caf::atom_constant<caf::atom("wake")>;
using retry = caf::atom_constant<caf::atom("retry")>;
using redeliver = caf::atom_constant<caf::atom("redeliver")>;
using remove = caf::atom_constant<caf::atom("remove")>;
using compact = caf::atom_constant<caf::atom("compact")>;
using flush = caf::atom_constant<caf::atom("flush")>;
using history = caf::atom_constant<caf::atom("history")>;
using volume = caf::atom_constant<caf::atom("volume")>;
using idle = caf::atom_constant<caf::atom("idle")>;
using cancel = caf::atom_constant<caf::atom("cancel")>;
using sample = caf::atom_constant<caf::atom("sample")>;
using stats = caf::atom_constant<caf::atom("stats")>;
using snapshot = caf::atom_constant<caf::atom("snapshot")>;
using network = caf::atom_constant<caf::atom("network")>;
using agent_up = caf::atom_constant<caf::atom("agentup")>;
using agent_end = caf::atom_constant<caf::atom("agentend")>;
using prepare = caf::atom_constant<caf::atom("prepare")>;
using claim = caf::atom_constant<caf::atom("claim")>;
using drain = caf::atom_constant<caf::atom("drain")>;
using stop = caf::atom_constant<caf::atom("stop")>;
using resume = caf::atom_constant<caf::atom("resume")>;
using reclaim = caf::atom_constant<caf::atom("reclaim")>;
using lost = caf::atom_constant<caf::atom("lost")>;
using join = caf::atom_constant<caf::atom("join")>;
using broken = caf::atom_constant<caf::atom("broken")>;
using tag = caf::atom_constant<caf::atom("tag")>;
using untag = caf::atom_constant<caf::atom("untag")>;
} // namespace atom

/// A bounded executor (actors/executor.hpp): runs blocking work on a lane's
/// threads. Local only: a blocking_job never leaves its node.
using executor_actor = caf::typed_actor<
  // Runs the job on one of the lane's threads (it waits while all are busy);
  // replies once it ran.
  caf::replies_to<atom::run, blocking_job>::with<atom::done>>;

/// What subscribes to an agent stream (a data-plane connection's mailbox):
/// it takes the stream's frames in order, then its end.
using agent_sink_actor = caf::typed_actor<
  // The next frame of the agent's answer (checked, never an error frame);
  // "result" or "end" is the last. The sink returns one credit per frame
  // (agent_stream_actor's ack).
  caf::reacts_to<atom::frame, agent_frame>,
  // The stream ended without its terminal frame: the agent's error, a
  // broken stream, or the agent gone. Nothing follows.
  caf::reacts_to<atom::broken, agent_stream_error>>;

/// An agent stream (actors/agent_stream.hpp): relays one streaming agent
/// connection to its sink within a credit window.
using agent_stream_actor = caf::typed_actor<
  // The sink took `n` more frames: they leave the window, and the stream
  // reads on if it was full.
  caf::reacts_to<atom::ack, uint32_t>>;

/// The single writer of the event log.
using event_log_actor = caf::typed_actor<
  // Durably appends one event (WAL synced) and replies with it, its sequence
  // number assigned. The reply means the event survives a crash. Appends that
  // arrive together share one synced write (group commit), in arrival order.
  caf::replies_to<atom::append, event>::with<event>,
  // Self-sent: writes the appends queued since the last write in one batch.
  caf::reacts_to<atom::flush>,
  // Replies with the newest sequence number once the log grows past `after`
  // (at once if it has), or after `wait_ms` with the newest one as it is: a
  // long poll's wait (GET /events/sandboxes?wait=S). At most 4096 wait at
  // once; past that the reply comes at once.
  caf::replies_to<atom::wait, uint64_t, uint32_t>::with<uint64_t>,
  // Self-sent: the wait with this id is over.
  caf::reacts_to<atom::timeout, uint64_t>,
  // Drops events past the retention period into a signed checkpoint, then
  // schedules the next round.
  caf::reacts_to<atom::compact>>;

/// One per sandbox; owns its record, its TTL timer and its container.
using sandbox_actor = caf::typed_actor<
  // The sandbox as it is now.
  caf::replies_to<atom::get>::with<sandbox_record>,
  // Boots the container of a new sandbox; replies once `created` is logged.
  caf::replies_to<atom::start>::with<sandbox_record>,
  // Warm pool: boots the container (and the template's start command) for
  // no one yet; nothing is logged and no API sees it until it is claimed.
  caf::replies_to<atom::prepare>::with<bool>,
  // Warm pool: hands the prepared sandbox to a caller. The record (same id)
  // brings the caller's org, metadata, env vars, timeouts and network policy,
  // applied now; `agent` of the spec, if any, starts once `created` is
  // logged. A container that can no longer take them is replaced by a fresh
  // one of the same id. Replies as `start` does.
  caf::replies_to<atom::claim, sandbox_record, create_spec>::with<sandbox_record>,
  // Warm pool: removes a prepared sandbox nobody claimed (nothing logged).
  caf::replies_to<atom::remove>::with<bool>,
  // After replay: brings the container in line with the log, or ends the
  // sandbox as orphaned when its container is gone.
  caf::replies_to<atom::reconcile>::with<sandbox_record>,
  // Freezes the container, memory kept; 409 when already paused.
  // With `keep_memory` false the container is stopped and only its files
  // kept (memory freed; resuming boots it fresh on them).
  caf::replies_to<atom::pause, bool>::with<sandbox_record>,
  // Resumes if paused and restarts the TTL at `timeout_s` from now.
  caf::replies_to<atom::connect, int64_t>::with<connect_result>,
  // Removes the container and ends the sandbox for `reason`.
  caf::replies_to<atom::kill, kill_reason>::with<sandbox_record>,
  // Restarts the TTL at `timeout_s` from now (an `updated` event).
  caf::replies_to<atom::timeout, int64_t>::with<sandbox_record>,
  // Sends one request frame to the in-sandbox agent and replies with its
  // terminal frame, waiting at most `timeout_ms`. Needs `running`.
  caf::replies_to<atom::agent, agent_frame, int64_t>::with<agent_frame>,
  // Runs the process of an exec request frame to completion inside the
  // sandbox, waiting at most `timeout_ms`, and logs its output; replies with
  // its outcome (502 when it could not run).
  caf::replies_to<atom::exec, agent_frame, int64_t>::with<exec_outcome>,
  // Reads the cgroup and overlay now.
  caf::replies_to<atom::metrics>::with<container_sample>,
  // The host path of the agent's socket, for bulk file transfers that
  // stream straight through; 409 unless running.
  caf::replies_to<atom::endpoint>::with<std::string>,
  // Opens the agent stream of a request frame (exec, connect, watch)
  // relayed to `sink` by a stream actor this sandbox supervises; replies
  // with that actor, which takes the sink's credit.
  caf::replies_to<atom::relay, agent_frame, agent_sink_actor>::with<agent_stream_actor>,
  // The TTL timer of `generation` fired; stale generations are ignored.
  caf::reacts_to<atom::expire, uint64_t>,
  // The metrics timer of `generation` fired: sample the cgroup into the
  // sandbox's metrics history (while running).
  caf::reacts_to<atom::sample, uint64_t>,
  // The idle timer of `generation` fired: ends the sandbox if nothing used
  // it for its idle timeout, else waits for the rest.
  caf::reacts_to<atom::idle, uint64_t>,
  // Freezes the sandbox if running, copies its writable layer into a new
  // snapshot named `name` (may be empty; `hidden` ones are not listed),
  // thaws it; replies with the stored snapshot.
  caf::replies_to<atom::snapshot, std::string, bool>::with<snapshot_info>,
  // Replaces the egress policy (running or paused) and logs it as an
  // `updated` event; a sandbox paused without memory gets it at resume.
  caf::replies_to<atom::network, network_view>::with<sandbox_record>,
  // Asks the one-shot agent to stop (SIGTERM, SIGKILL after its grace
  // period) and logs the cancel; 409 when no agent is running.
  caf::replies_to<atom::cancel>::with<sandbox_record>,
  // The grace period after a cancel of agent process `pid` is over.
  caf::reacts_to<atom::cancel, int64_t>,
  // The agent task saw the agent process `pid` start (logged once).
  caf::reacts_to<atom::agent_up, int64_t>,
  // The agent process ended with `exit_code` (128 + N: killed by signal N), or
  // the task lost it (`lost`: the sandbox stopped under it).
  caf::reacts_to<atom::agent_end, int64_t, bool>,
  // Its worker node was lost (or never came back): logs `killed` with
  // kill_reason node_lost (the sandbox ends in `error`) and stops. Nothing is
  // asked of the runtime: the node's leftovers go when it rejoins.
  caf::reacts_to<atom::lost>>;

/// Maps sandbox ids to sandbox actors, per org.
using registry_actor = caf::typed_actor<
  // Creates a sandbox; replies when it runs and `created` is logged.
  caf::replies_to<atom::create, create_spec>::with<sandbox_record>,
  // Makes org's volume `name` and logs `volume.lifecycle.created`: 409 when
  // the org has one of that name, 429 past the org's volume limit.
  caf::replies_to<atom::create, atom::volume, std::string, std::string>::with<volume>,
  // Removes org's volume `id` with its files and logs its deletion: 404 when
  // the org has none such, 409 while a sandbox not yet ended mounts it.
  caf::replies_to<atom::remove, atom::volume, std::string, std::string>::with<bool>,
  // The record of sandbox `id` of `org`, also once it stopped (its logs and
  // metrics outlive it).
  caf::replies_to<atom::get, std::string, std::string>::with<sandbox_record>,
  // The actor of sandbox `id` if it belongs to `org` and is not stopped.
  caf::replies_to<atom::lookup, std::string, std::string>::with<sandbox_actor>,
  // The actor of sandbox `id` whatever its org: only for the data plane,
  // after the sandbox's access token proved the caller's right to it.
  caf::replies_to<atom::lookup, std::string>::with<sandbox_actor>,
  // Deletes the snapshot of `org` that `ref` names and its files; 404 for
  // none, 409 while a live sandbox or another snapshot rests on it.
  caf::replies_to<atom::remove, std::string, std::string>::with<bool>,
  // The running and paused sandboxes of `org`, newest first (from the
  // listing index: costs what it returns).
  caf::replies_to<atom::list, std::string>::with<std::vector<sandbox_record>>,
  // Every sandbox of `org` known since the log began, ended ones too, newest
  // first. Walks the whole history: only for queries that ask for ended ones.
  caf::replies_to<atom::list, std::string, atom::history>::with<std::vector<sandbox_record>>,
  // Per template id: how many sandboxes `org` started from it, and when last.
  caf::replies_to<atom::stats, std::string>::with<std::map<std::string, template_usage>>,
  // One page of the org's live sandboxes, from an index ordered by start
  // time: the cost is the page, not the number of sandboxes ever made.
  // Rendered (a `limit` of SIZE_MAX: the whole listing).
  caf::replies_to<atom::list, list_query, atom::render>::with<rendered_page>,
  // The ids of every live sandbox, whatever its org: only for finding the
  // sandbox a signed /files URL was made for.
  caf::replies_to<atom::list>::with<std::vector<std::string>>,
  // A sandbox reports its record after each transition.
  caf::reacts_to<atom::update, sandbox_record>,
  // Replays the log and respawns the live sandboxes; replies with how many
  // are live once they are, then reconciles each with the runtime (its
  // reconcile first in its mailbox) and logs when all are.
  caf::replies_to<atom::recover>::with<uint64_t>,
  // Counts by state and the create latency histogram.
  caf::replies_to<atom::stats>::with<registry_stats>,
  // The warm pool may refill (a create finished, a retry is due).
  caf::reacts_to<atom::wake>,
  // A metrics tick: samples every running sandbox's cgroup in one blocking
  // job and appends them all in one write, then arms the next tick.
  caf::reacts_to<atom::sample>,
  // Shutdown: removes every warm sandbox and stops refilling; replies with
  // how many were removed.
  caf::replies_to<atom::drain>::with<uint64_t>,
  // Worker node `node` is lost with sandboxes `ids` on it: each ends in
  // `error` (kill_reason node_lost).
  caf::reacts_to<atom::lost, std::string, std::vector<std::string>>,
  // Worker node `node` (re)joined: its sandboxes `ids` reconcile with it.
  caf::reacts_to<atom::reconcile, std::string, std::vector<std::string>>>;

/// One per webhook: tails the log from the webhook's durable cursor and
/// delivers its events in order, at least once.
using webhook_actor = caf::typed_actor<
  // The log may have grown.
  caf::reacts_to<atom::wake>,
  // The backoff timer of `generation` fired; stale generations are ignored.
  caf::reacts_to<atom::retry, uint64_t>,
  // The webhook's configuration changed (url, events, secret, enabled).
  caf::reacts_to<atom::update, webhook>,
  // POST the event at `seq` once more (an operator's redelivery).
  caf::reacts_to<atom::redeliver, uint64_t>>;

/// Owns the webhooks: stores their configuration, keeps one webhook actor
/// per webhook, and wakes them when the log grows.
using webhook_dispatcher_actor = caf::typed_actor<
  // The log grew (sent by the event log writer after each append).
  caf::reacts_to<atom::wake>,
  // Stores a new (validated) webhook and starts delivering events appended
  // from now on.
  caf::replies_to<atom::create, webhook>::with<webhook>,
  // Stores a changed webhook and hands it to its actor.
  caf::replies_to<atom::update, webhook>::with<webhook>,
  // Deletes webhook `id` with its cursor and deliveries.
  caf::replies_to<atom::remove, std::string>::with<bool>,
  // Redeliver the event at `seq` to webhook `id`.
  caf::reacts_to<atom::redeliver, std::string, uint64_t>>;

/// Builds the orgs' own templates (POST /templates), one at a time on a
/// detached worker under the catalogue's build lock; the one writer of their
/// records (reads go to the store directly).
using template_builder_actor = caf::typed_actor<
  // Checks `request` against the catalogue and the org's templates, stores
  // the template (new, or the org's same-named one: a rebuild) with a new
  // waiting build and queues it; replies with the stored template, whose
  // `latest_build` is the new build. 409 while that template builds.
  caf::replies_to<atom::create, template_request>::with<user_template>,
  // POST /v3/templates (a template defined in code): stores the template
  // (new, or the org's same-named one) with a new build that waits for its
  // steps; a build of it still waiting for steps is superseded. Replies with
  // the stored template. 409 while a build of it runs.
  caf::replies_to<atom::create, code_template_request>::with<user_template>,
  // The steps of waiting build `build` of `org`'s template `template`:
  // checks what it starts from (400/404) and runs it, each step inside a
  // sandbox; 409 unless the build waits for its steps.
  caf::replies_to<atom::start, std::string, std::string, std::string, template_steps>::with<bool>,
  // Deletes template `ref` (id or name) of `org` with its builds, their
  // logs and its root filesystems; 409 while it builds or while a live
  // sandbox or a snapshot rests on it.
  caf::replies_to<atom::remove, std::string, std::string>::with<bool>,
  // POST /templates/tags: gives `tags` to the ready build of `org`'s
  // template that `target` ("name:tag", or "name" for the tag default)
  // names, taking them from the template's other builds; replies with that
  // build's id. 404 when the template or the tag is unknown.
  caf::replies_to<atom::tag, std::string, std::string, std::vector<std::string>>::with<std::string>,
  // DELETE /templates/tags: takes `tags` from `org`'s template `name` (id
  // or name); 404 when the template is unknown or no build holds one of them
  // (then nothing changes).
  caf::replies_to<atom::untag, std::string, std::string, std::vector<std::string>>::with<bool>>;

// ---- tunnel (cluster data plane) ----
//
// A client's connection to a remote sandbox's agent socket, carried over CAF
// messages (actors/tunnel.hpp): the control node's front accepts it on a
// local unix socket, the worker's back connects it to the agent socket. Both
// ends name a connection by the number the front gave it, and each end takes
// traffic for a number only from the peer actor that connection belongs to
// (the message's sender): anything else is dropped.

namespace atom {
using tunnel_open = caf::atom_constant<caf::atom("tunopen")>;
using tunnel_data = caf::atom_constant<caf::atom("tundata")>;
using tunnel_ack = caf::atom_constant<caf::atom("tunack")>;
using tunnel_eof = caf::atom_constant<caf::atom("tuneof")>;
using tunnel_close = caf::atom_constant<caf::atom("tunclose")>;
} // namespace atom

/// What each end of a tunnelled connection takes from the other.
using tunnel_peer_actor = caf::typed_actor<
  // Bytes (64 KiB at most) the sender read from its socket of connection
  // `conn`; with the unacknowledged ones they stay within the window.
  caf::reacts_to<atom::tunnel_data, uint64_t, std::string>,
  // The sender wrote `n` more of our bytes of `conn` out: they leave our
  // window, and we read on if it was full.
  caf::reacts_to<atom::tunnel_ack, uint64_t, uint64_t>,
  // The sender's socket of `conn` reached its end of stream (after every
  // byte it sent): half-close ours once the pending bytes are written.
  caf::reacts_to<atom::tunnel_eof, uint64_t>,
  // The sender dropped `conn` (connect failure, error, withdraw, limit):
  // close ours now, pending bytes discarded.
  caf::reacts_to<atom::tunnel_close, uint64_t>>;

/// The control node's end: one per tunnel_front.
using tunnel_front_actor = tunnel_peer_actor;

/// A worker's end, sent to the control node when the worker joins.
using tunnel_back_actor = tunnel_peer_actor::extend<
  // A client connected to sandbox `id`'s socket on the front (the sender):
  // connect `conn` to that sandbox's agent socket (the worker's own path
  // for `id`, never one from a message), or answer tunnel_close.
  caf::reacts_to<atom::tunnel_open, uint64_t, std::string>>;

// ---- cluster (worker nodes over CAF's middleman) ----

/// What a worker node offers: sent when it joins, asked every few seconds.
struct node_capacity {
  std::string node;                   // its name, unique in the cluster
  int32_t cpus = 0;
  int64_t memory_mb = 0;              // the host's memory
  int64_t available_mb = 0;           // MemAvailable when reported
  uint32_t containers = 0;            // sandboxes it holds
  std::vector<std::string> templates; // catalogue templates built there
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_capacity& x) {
  return f(caf::meta::type_name("node_capacity"), x.node, x.cpus, x.memory_mb, x.available_mb,
           x.containers, x.templates);
}

/// A node as the operator sees it (sandboxd worker list).
struct node_view {
  node_capacity capacity;
  bool local = false;      // the control node's own runtime
  bool connected = false;
  bool draining = false;   // no new sandboxes
  uint32_t sandboxes = 0;  // placed there by this control node
  int64_t allocated_mb = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_view& x) {
  return f(caf::meta::type_name("node_view"), x.capacity, x.local, x.connected, x.draining,
           x.sandboxes, x.allocated_mb);
}

/// A worker node's container runtime, driven by the control node: each
/// message is the sandbox_runtime call of the same name, run on the worker's
/// bounded executor. Failures come back as errors with their status.
using worker_actor = caf::typed_actor<
  // create(spec, fresh); the worker resolves the root from spec.template_name.
  caf::replies_to<atom::create, container_spec, bool>::with<bool>,
  caf::replies_to<atom::stop, std::string>::with<bool>,
  caf::replies_to<atom::pause, std::string>::with<bool>,
  caf::replies_to<atom::resume, std::string>::with<bool>,
  // destroy(id)
  caf::replies_to<atom::remove, std::string>::with<bool>,
  // terminate(id)
  caf::replies_to<atom::kill, std::string>::with<bool>,
  caf::replies_to<atom::reclaim, std::string>::with<bool>,
  caf::replies_to<atom::network, std::string, network_policy>::with<bool>,
  // state(id)
  caf::replies_to<atom::get, std::string>::with<std::string>,
  // list(): every container the worker holds.
  caf::replies_to<atom::list>::with<std::vector<std::string>>,
  // sample(id, cpu_count, memory_mb, disk_size_mb)
  caf::replies_to<atom::metrics, std::string, int32_t, int32_t, int32_t>::with<container_sample>,
  // Its capacity now.
  caf::replies_to<atom::stats>::with<node_capacity>,
  // copy_layer(id, into the layer of snapshot `snapshot_id`): kept here, under
  // this node's own layers root.
  caf::replies_to<atom::snapshot, std::string, std::string>::with<bool>,
  // remove_layer(snapshot_id): idempotent.
  caf::replies_to<atom::remove, atom::snapshot, std::string>::with<bool>,
  // The ids of every snapshot layer this node keeps.
  caf::replies_to<atom::list, atom::snapshot>::with<std::vector<std::string>>>;

/// The control node's door for workers, published on --cluster-listen (TLS:
/// only a node holding the cluster secret completes the handshake).
using cluster_gate_actor = caf::typed_actor<
  // A worker joins with its runtime and its end of the data-plane tunnel;
  // 409 while a node of that name is connected. Its leftover containers (no
  // live sandbox of the log on it) are destroyed, its sandboxes reconciled.
  caf::replies_to<atom::join, node_capacity, worker_actor, tunnel_back_actor>::with<bool>,
  // Self-sent every few seconds: asks each connected worker its capacity.
  caf::reacts_to<atom::sample>,
  // Nodes the log places sandboxes on but that have not joined by now are
  // lost (armed at start).
  caf::reacts_to<atom::timeout>>;

/// Turns a failure into a CAF error that keeps its status and message.
caf::error to_error(const failure& f);

/// The inverse; CAF's own errors (timeouts, dead actors) become 5xx.
failure from_error(const caf::error& e);

/// Announces every payload type above (and the actor handles in replies) by
/// name: a node can only deserialize the types it was told about.
void add_message_types(caf::actor_system_config& cfg);

} // namespace sandboxd
