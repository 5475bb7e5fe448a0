#include "actors/sandbox.hpp"

#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/agent_frame_json.hpp"
#include "actors/agent_stream.hpp"
#include "actors/agent_task.hpp"
#include "actors/blocking.hpp"
#include "actors/output_lines.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "core/utf8_lossy.hpp"
#include "runtime/agent_client.hpp"
#include "runtime/containers.hpp"
#include "storage/store.hpp"

namespace sandboxd {

namespace {

struct sandbox_actor_state {
  sandbox_record rec;
  sandbox_deps deps;
  uint64_t ttl_generation = 0;
  size_t open_streams = 0; // agent streams this sandbox supervises
  int64_t last_activity_ms = 0;
  uint64_t idle_generation = 0;
  bool stopping = false;   // a kill is under way: a lost agent is expected
  uint64_t sample_generation = 0;
  bool warm = false;       // prepared for the warm pool, not yet claimed
  static inline const char* name = "sandbox";
};

using self_ptr = sandbox_actor::stateful_pointer<sandbox_actor_state>;
using record_cont = std::function<void(result<sandbox_record>)>;

event make_event(const sandbox_record& rec, event_type type) {
  event e;
  e.id = new_uuid();
  e.type = type;
  e.timestamp_ms = now_ms();
  e.sandbox_id = rec.id;
  e.template_id = rec.template_id;
  e.team_id = rec.org_id;
  e.execution_id = rec.execution_id;
  e.metadata = rec.metadata;
  e.end_at_ms = rec.end_at_ms;
  return e;
}

// Restarts the TTL timer for the current record; bumping the generation
// makes every earlier timer a no-op.
void arm_ttl(self_ptr self) {
  auto gen = ++self->state.ttl_generation;
  auto& rec = self->state.rec;
  if (rec.state != sandbox_state::running)
    return;
  auto delay = std::max<int64_t>(0, rec.end_at_ms - now_ms());
  self->delayed_send(self, std::chrono::milliseconds(delay),
                     atom::expire::value, gen);
}

// Samples the cgroup once when the sandbox starts running (its first point
// at once); the registry's metrics tick takes every later one. A new
// generation (each transition) drops a sample still due.
void arm_sampler(self_ptr self) {
  auto gen = ++self->state.sample_generation;
  if (self->state.rec.state == sandbox_state::running)
    self->send(self, atom::sample::value, gen);
}

// Any use of the sandbox through the API counts against its idle timeout.
void touch(self_ptr self) {
  self->state.last_activity_ms = now_ms();
}

// Restarts the idle timer (sandboxes with an idle timeout only).
void arm_idle(self_ptr self) {
  auto gen = ++self->state.idle_generation;
  auto& rec = self->state.rec;
  if (rec.state != sandbox_state::running || rec.idle_timeout_s <= 0)
    return;
  touch(self);
  self->delayed_send(self, std::chrono::seconds(rec.idle_timeout_s), atom::idle::value, gen);
}

// One line in the sandbox's own log for each lifecycle change.
void log_transition(self_ptr self, const event& e) {
  auto line = to_string(e.type);
  if (e.reason)
    line += " (" + to_string(*e.reason) + ")";
  // A write (unsynced, but a write): on the executor, not this thread.
  auto db = self->state.deps.db;
  auto id = self->state.rec.id;
  auto at = e.timestamp_ms;
  run_blocking(
    self, false, [db, id, at, line] { return db->append_logs(id, {{at, "system", line}}); },
    [id](status s) {
      if (!s)
        spdlog::warn("sandbox {}: a line of its log is lost: {}", id, s.error().message);
    });
}

// Logs `e` (synced), folds it into the record, tells the registry and
// re-arms the TTL; then continues with the new record. Serialized.
void commit(self_ptr self, event e, record_cont k) {
  self
    ->request(self->state.deps.log, caf::infinite, atom::append::value,
              std::move(e))
    .await(
      [=](event& logged) {
        auto st = apply(self->state.rec, logged);
        if (!st)
          spdlog::error("sandbox {}: logged event does not apply: {}",
                        self->state.rec.id, st.error().message);
        log_transition(self, logged);
        arm_ttl(self);
        arm_idle(self);
        // Sampling runs while running; pausing ends the chain by itself.
        if (logged.type == event_type::created || logged.type == event_type::resumed)
          arm_sampler(self);
        self->send(self->state.deps.registry, atom::update::value,
                   self->state.rec);
        k(self->state.rec);
      },
      [=](caf::error& err) { k(from_error(err)); });
}

// Freezes the container (memory kept), or stops it keeping only its files
// (memory freed), and logs `paused`.
void pause_sandbox(self_ptr self, bool keep_memory, record_cont k) {
  auto rt = self->state.deps.runtime;
  auto id = self->state.rec.id;
  run_blocking(self, true,
               [rt, id, keep_memory] { return keep_memory ? rt->pause(id) : rt->stop(id); },
               [=](status s) {
                 if (!s)
                   return k(s.error());
                 auto e = make_event(self->state.rec, event_type::paused);
                 e.execution = current_execution(self->state.rec, now_ms());
                 e.ext[event_ext::cold] = keep_memory ? "false" : "true";
                 commit(self, std::move(e), k);
               });
}

void kill_sandbox(self_ptr self, kill_reason reason, record_cont k) {
  auto chk = check_transition(self->state.rec.state, sandbox_op::kill);
  if (!chk)
    return k(chk.error());
  auto rt = self->state.deps.runtime;
  auto id = self->state.rec.id;
  self->state.stopping = true;
  // `killed` is logged once the processes are gone; what they leave
  // (runtime state, cgroups, mounts, disk, files: tens of ms) is removed
  // after, on the executor, with no caller waiting for it.
  run_blocking(self, true, [rt, id] { return rt->terminate(id); },
               [=](status s) {
                 self->state.stopping = false;
                 if (!s) {
                   spdlog::error("sandbox {}: kill failed: {}", id,
                                 s.error().message);
                   return k(s.error());
                 }
                 caf::anon_send(blocking_executor(self->home_system(), lane::reclaim),
                                atom::run::value, blocking_job{[rt, id] {
                                  if (auto st = rt->reclaim(id); !st)
                                    spdlog::error("sandbox {}: reclaim after kill failed: {}", id,
                                                  st.error().message);
                                }});
                 auto e = make_event(self->state.rec, event_type::killed);
                 e.reason = reason;
                 e.execution = current_execution(self->state.rec, now_ms());
                 commit(self, std::move(e), [=](result<sandbox_record> r) {
                   k(r);
                   if (r)
                     self->quit();
                 });
               });
}

// The continuation of what `timer` of `generation` asked for (the TTL's
// pause or kill, the idle kill): a refusal is logged and the timer fires
// again `end_retry` later, so that no sandbox outlives its deadline for good.
// A transition meanwhile (a new generation) voids the retry.
template <class Timer>
record_cont retry_end(self_ptr self, const char* what, Timer timer, uint64_t generation) {
  return [self, what, timer, generation](result<sandbox_record> r) {
    if (r)
      return;
    spdlog::error("sandbox {}: {} not applied: {}; again in {} s", self->state.rec.id, what,
                  r.error().message, end_retry.count());
    self->delayed_send(self, end_retry, timer, generation);
  };
}

// A finished process's output as log lines, one per line of output.
std::vector<store::log_line> exec_output_lines(const agent::exec_outcome& r) {
  std::vector<store::log_line> lines;
  auto ts = now_ms();
  for (auto [stream, text] : {std::pair{"stdout", &r.stdout_data}, std::pair{"stderr", &r.stderr_data}}) {
    size_t start = 0;
    while (start < text->size()) {
      auto end = text->find('\n', start);
      if (end == std::string::npos)
        end = text->size();
      lines.push_back({ts, stream, text->substr(start, end - start)});
      start = end + 1;
    }
  }
  return lines;
}

container_spec spec_of(const sandbox_record& rec, const sandbox_deps& deps);
void start_template(self_ptr self, std::function<void()> k);

// Thaws a paused sandbox and logs `resumed`, its TTL restarting at
// `timeout_s` from now. Serialized: requests that arrive meanwhile find it
// running.
void resume_sandbox(self_ptr self, int64_t timeout_s, record_cont k) {
  auto rt = self->state.deps.runtime;
  auto id = self->state.rec.id;
  // A cold pause kept only the files: boot the container again on them.
  auto cold = lifecycle_of(self->state.rec).cold;
  auto spec = spec_of(self->state.rec, self->state.deps);
  run_blocking(self, true,
               [rt, id, cold, spec] { return cold ? rt->create(spec, false) : rt->resume(id); },
               [=](status s) {
                 if (!s)
                   return k(s.error());
                 auto e = make_event(self->state.rec, event_type::resumed);
                 e.execution_id = new_uuid();
                 e.end_at_ms = capped_end(self->state.rec, e.timestamp_ms + timeout_s * 1000);
                 commit(self, std::move(e), [=](result<sandbox_record> r) {
                   // Booted afresh: the template's start command runs again.
                   if (r && cold)
                     return start_template(self, [=] { k(r); });
                   k(r);
                 });
               });
}

// Continues with `k` once the sandbox can be used: at once when running,
// after a resume when it is paused with auto-resume on (E2B's autoResume:
// the data plane wakes it), else with the reason it can't be used.
void when_usable(self_ptr self, std::function<void(status)> k) {
  auto& rec = self->state.rec;
  if (auto l = lifecycle_of(rec); rec.state == sandbox_state::paused && l.auto_resume && !l.cold) {
    spdlog::info("sandbox {}: resumed on use (autoResume)", rec.id);
    return resume_sandbox(self, rec.timeout_s, [k](result<sandbox_record> r) {
      k(r ? success() : status{r.error()});
    });
  }
  k(check_transition(rec.state, sandbox_op::use));
}

// A reply of type T that `f(promise)` gives once the sandbox is usable, or
// the reason it isn't.
template <class T, class F>
caf::result<T> once_usable(self_ptr self, F f) {
  auto rp = self->make_response_promise<T>();
  when_usable(self, [=](status st) mutable {
    if (!st)
      rp.deliver(to_error(st.error()));
    else
      f(rp);
  });
  return rp;
}

// Runs `job(agent socket)` on a worker once the sandbox is usable; agent
// calls run concurrently, never serialized with lifecycle transitions.
template <class T, class Job>
caf::result<T> agent_job(self_ptr self, Job job) {
  return once_usable<T>(self, [=](caf::typed_response_promise<T>& rp) {
    touch(self);
    auto sock = self->state.deps.runtime->agent_socket(self->state.rec.id);
    run_blocking(self, false, [sock, job] { return job(sock); }, deliver_to(rp), lane::long_running);
  });
}

// The tag that finds the one-shot agent's process again after a restart.
constexpr const char* agent_process_tag = "e2a-agent";

// Starts the one-shot agent of a new sandbox. The key travels as a secret
// variable: the in-sandbox agent never lists it and redacts it from output.
void start_agent(self_ptr self, create_spec::agent_launch launch) {
  nlohmann::json env = {{"TASK", launch.task}, {"MODEL", launch.model}};
  nlohmann::json req = {{"op", "exec"},
                        {"cmd", "/bin/sh"},
                        {"args", {"-c", launch.command}},
                        {"env", env},
                        {"secret_env", {{launch.key_env, launch.key}}},
                        {"user", "user"},
                        {"tag", agent_process_tag},
                        {"stdin", false}};
  auto& st = self->state;
  spawn_agent_task(self->home_system(), st.deps.runtime->agent_socket(st.rec.id), req.dump(),
                   st.deps.db, st.rec.id, self);
}

// Starts the template's start command (sh -c as the template's default user
// in its default workdir, else `user` in /workspace; the agent mechanism
// without the agent's status, its output in the sandbox's log), then
// continues with `k`: at once, or once
// the command listens on the template's ready port. That wait is bounded: a
// command that never listens delays the start by `ready_wait` at most, and
// the sandbox is usable without it.
void start_template(self_ptr self, std::function<void()> k) {
  auto& st = self->state;
  if (st.deps.start_cmd.empty())
    return k();
  auto ext_or = [&](const char* key, const char* otherwise) {
    auto it = st.rec.ext.find(key);
    return it == st.rec.ext.end() ? std::string{otherwise} : it->second;
  };
  nlohmann::json req = {{"op", "exec"},
                        {"cmd", "/bin/sh"},
                        {"args", {"-c", st.deps.start_cmd}},
                        {"user", ext_or(event_ext::default_user, "user")},
                        {"cwd", ext_or(event_ext::default_workdir, "/workspace")},
                        {"tag", "start-cmd"},
                        {"stdin", false}};
  auto socket = st.deps.runtime->agent_socket(st.rec.id);
  spawn_agent_task(self->home_system(), socket, req.dump(), st.deps.db, st.rec.id, self, false);
  auto port = st.deps.ready_port;
  if (port <= 0)
    return k();
  static constexpr auto ready_wait = std::chrono::milliseconds(15000);
  run_blocking(
    self, true, [socket, port] { return agent::wait_for_port(socket, port, ready_wait); },
    [self, port, k](status ready) {
      if (!ready)
        spdlog::warn("sandbox {}: the start command is not listening on port {}: {}",
                     self->state.rec.id, port, ready.error().message);
      k();
    },
    lane::long_running); // up to ready_wait: not in the lifecycle lane's way
}

// Follows an agent that was running when sandboxd stopped.
void reattach_agent(self_ptr self) {
  auto a = agent_of(self->state.rec);
  if (a.name.empty() || a.status == "completed" || a.status == "failed")
    return;
  nlohmann::json req = {{"op", "connect"}};
  if (a.pid > 0)
    req["pid"] = a.pid;
  else
    req["tag"] = agent_process_tag;
  auto& st = self->state;
  spawn_agent_task(self->home_system(), st.deps.runtime->agent_socket(st.rec.id), req.dump(),
                   st.deps.db, st.rec.id, self);
}

// An `updated` event carrying only named facts (the TTL is unchanged).
void commit_ext(self_ptr self, std::map<std::string, std::string> ext, record_cont k) {
  auto e = make_event(self->state.rec, event_type::updated);
  e.ext = std::move(ext);
  commit(self, std::move(e), std::move(k));
}

bool agent_running(const sandbox_record& rec) {
  auto a = agent_of(rec);
  return !a.name.empty() && a.status != "completed" && a.status != "failed";
}

// The egress part of `n`, for the runtime; `org` owns the rules' secrets.
network_policy policy_of(const network_view& n, const std::string& org) {
  return network_policy{n.internet, n.allow_out, n.deny_out, n.rules, org};
}

network_policy policy_of(const sandbox_record& rec) {
  return policy_of(network_of(rec), rec.org_id);
}

container_spec spec_of(const sandbox_record& rec, const sandbox_deps& deps) {
  container_spec spec;
  spec.network = policy_of(rec);
  spec.id = rec.id;
  spec.lower_rootfs = deps.lower_rootfs;
  spec.layers = deps.layers;
  spec.layers_node = deps.layers_node;
  if (deps.catalogue_template)
    spec.template_name = deps.base_template;
  spec.cpu_count = rec.cpu_count;
  spec.memory_mb = rec.memory_mb;
  spec.disk.bytes = static_cast<int64_t>(rec.disk_size_mb) << 20;
  spec.env = {
    {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    {"E2B_SANDBOX", "true"},
    {"E2B_SANDBOX_ID", rec.id},
    {"E2B_TEMPLATE_ID", rec.template_id},
  };
  for (auto& [k, v] : rec.env_vars)
    spec.env[k] = v;
  if (auto v = rec.ext.find(event_ext::volumes); v != rec.ext.end())
    for (auto& m : decode_mounts(v->second))
      spec.volumes.push_back({volume{m.volume_id, rec.org_id, m.name, 0, m.size_mb}, m.path});
  return spec;
}

// Logs `created` for a sandbox whose container runs, then starts its
// one-shot agent and, unless a warm sandbox already did at boot, the
// template's start command; continues with `k`. Not logged means not
// created: the container is taken back.
void go_live(self_ptr self, bool template_started, record_cont k) {
  auto& rec = self->state.rec;
  rec.execution_id = new_uuid();
  auto e = make_event(rec, event_type::created);
  // Until now max_end_ms held the hard lifetime as a duration.
  e.max_end_ms = rec.max_end_ms > 0 ? e.timestamp_ms + rec.max_end_ms : 0;
  rec.max_end_ms = e.max_end_ms;
  e.idle_timeout_s = rec.idle_timeout_s;
  e.end_at_ms = capped_end(rec, e.timestamp_ms + rec.timeout_s * 1000);
  e.env_vars = rec.env_vars;
  e.alias = rec.alias;
  e.cpu_count = rec.cpu_count;
  e.memory_mb = rec.memory_mb;
  e.disk_size_mb = rec.disk_size_mb;
  e.timeout_s = rec.timeout_s;
  e.ext = rec.ext;
  if (auto node = self->state.deps.runtime->node_of(rec.id); !node.empty())
    e.ext[event_ext::node] = node;
  if (auto& launch = self->state.deps.launch) {
    e.ext[event_ext::agent] = launch->name;
    if (!launch->model.empty())
      e.ext[event_ext::agent_model] = launch->model;
    e.ext[event_ext::agent_grace] = std::to_string(launch->cancel_grace_s);
  }
  commit(self, std::move(e), [=](result<sandbox_record> r) {
    if (r) {
      if (auto& launch = self->state.deps.launch) {
        start_agent(self, *launch);
        launch.reset(); // the key stays in memory no longer than needed
      }
      if (template_started)
        return k(r);
      return start_template(self, [=] { k(r); });
    }
    auto rt = self->state.deps.runtime;
    auto id = self->state.rec.id;
    run_blocking(self, true, [rt, id] { return rt->destroy(id); },
                 [=](status) {
                   self->state.rec.state = sandbox_state::error;
                   self->send(self->state.deps.registry, atom::update::value, self->state.rec);
                   k(r);
                   self->quit();
                 });
  });
}

// Boots the container of a new sandbox (or a warm one) from its record.
void boot(self_ptr self, std::function<void(status)> then) {
  auto rt = self->state.deps.runtime;
  auto spec = spec_of(self->state.rec, self->state.deps);
  run_blocking(self, true, [rt, spec] { return rt->create(spec); }, std::move(then));
}

// Boots the container of a new sandbox, then goes live; a boot that fails
// ends the sandbox in `error` (never logged, so never listed).
void boot_and_go_live(self_ptr self, record_cont k) {
  boot(self, [=](status s) {
    if (s)
      return go_live(self, false, k);
    self->state.rec.state = sandbox_state::error;
    self->send(self->state.deps.registry, atom::update::value, self->state.rec);
    k(s.error());
    self->quit();
  });
}

sandbox_actor::behavior_type
sandbox_behavior(self_ptr self, sandbox_record rec, sandbox_deps deps) {
  self->state.rec = std::move(rec);
  self->state.deps = std::move(deps);
  self->set_down_handler([=](caf::down_msg&) { --self->state.open_streams; });
  return {
    [=](atom::get) -> sandbox_record {
      touch(self);
      return self->state.rec;
    },
    [=](atom::start) -> caf::result<sandbox_record> {
      auto rp = self->make_response_promise<sandbox_record>();
      boot_and_go_live(self, deliver_to(rp));
      return rp;
    },
    [=](atom::prepare) -> caf::result<bool> {
      auto rp = self->make_response_promise<bool>();
      boot(self, [=](status s) mutable {
        if (!s) {
          rp.deliver(to_error(s.error()));
          self->quit();
          return;
        }
        self->state.warm = true;
        start_template(self, [=]() mutable { rp.deliver(true); });
      });
      return rp;
    },
    [=](atom::claim, sandbox_record& rec, create_spec& extra) -> caf::result<sandbox_record> {
      auto rp = self->make_response_promise<sandbox_record>();
      auto k = deliver_to(rp);
      if (!self->state.warm || rec.id != self->state.rec.id) {
        rp.deliver(to_error(internal_error("sandbox " + rec.id + " is not a warm sandbox")));
        return rp;
      }
      self->state.warm = false;
      auto booted = policy_of(self->state.rec);
      // The container, and with it the id, hostname, boot id and id range,
      // stay; everything the caller chose arrives now.
      self->state.rec = std::move(rec);
      self->state.deps.launch = std::move(extra.agent);
      auto rt = self->state.deps.runtime;
      auto id = self->state.rec.id;
      auto sock = rt->agent_socket(id);
      auto env = self->state.rec.env_vars;
      auto policy = policy_of(self->state.rec);
      run_blocking(
        self, true,
        [rt, id, sock, env, policy, booted]() -> status {
          // Also proves the agent still answers.
          auto r = agent::call(sock, {{"op", "set_env"}, {"env", env}}, std::chrono::seconds(5));
          if (!r)
            return r.error();
          bool same = policy.internet == booted.internet && policy.allow_out == booted.allow_out
                      && policy.deny_out == booted.deny_out && policy.rules == booted.rules;
          return same ? success() : rt->update_network(id, policy);
        },
        [=](status s) {
          if (s)
            return go_live(self, true, k);
          spdlog::warn("sandbox {}: warm container not usable ({}); booting a fresh one",
                       id, s.error().message);
          run_blocking(self, true, [rt, id] { return rt->destroy(id); },
                       [=](status) { boot_and_go_live(self, k); });
        });
      return rp;
    },
    [=](atom::remove) -> caf::result<bool> {
      if (!self->state.warm)
        return to_error(conflict("sandbox " + self->state.rec.id + " is not a warm sandbox"));
      auto rp = self->make_response_promise<bool>();
      auto rt = self->state.deps.runtime;
      auto id = self->state.rec.id;
      run_blocking(self, true, [rt, id] { return rt->destroy(id); }, [=](status s) mutable {
        if (!s)
          spdlog::error("warm sandbox {}: not removed: {}", id, s.error().message);
        rp.deliver(static_cast<bool>(s));
        self->quit();
      });
      return rp;
    },
    [=](atom::reconcile) -> caf::result<sandbox_record> {
      auto rp = self->make_response_promise<sandbox_record>();
      auto k = deliver_to(rp);
      auto rt = self->state.deps.runtime;
      auto id = self->state.rec.id;
      auto logged = self->state.rec.state;
      auto cold = lifecycle_of(self->state.rec).cold;
      auto policy = policy_of(self->state.rec);
      // Returns true when the container is gone and the sandbox is orphaned.
      run_blocking(
        self, true,
        [rt, id, logged, cold, policy]() -> result<bool> {
          auto st = rt->state(id);
          // Paused without memory: the files are all there is.
          if (cold) {
            if (st)
              if (auto s = rt->stop(id); !s)
                spdlog::warn("sandbox {}: a container left of it not stopped: {}", id,
                             s.error().message);
            return false;
          }
          // Its worker node has not (re)joined yet: it reconciles when it does.
          if (!st && st.error().status == 503)
            return st.error();
          if (!st || *st == "stopped" || *st == "created") {
            if (auto s = rt->destroy(id); !s)
              spdlog::warn("sandbox {}: not fully removed: {}", id, s.error().message);
            return true;
          }
          if (*st == "running" && logged == sandbox_state::paused)
            if (auto s = rt->pause(id); !s)
              return s.error();
          if (*st == "paused" && logged == sandbox_state::running)
            if (auto s = rt->resume(id); !s)
              return s.error();
          // Rules again, in case the host's ruleset was flushed meanwhile.
          if (auto s = rt->update_network(id, policy); !s)
            spdlog::warn("sandbox {}: network not re-applied: {}", id, s.error().message);
          return false;
        },
        [=](result<bool> orphaned) {
          if (!orphaned || !*orphaned) {
            if (!orphaned)
              spdlog::warn("sandbox {}: reconcile: {}", id,
                           orphaned.error().message);
            arm_ttl(self);
            arm_idle(self);
            arm_sampler(self);
            if (orphaned && !*orphaned)
              reattach_agent(self);
            // Its node not answering: the caller may try again.
            if (!orphaned && orphaned.error().status == 503)
              return k(orphaned.error());
            return k(self->state.rec);
          }
          spdlog::warn("sandbox {}: container gone, ending it as orphaned", id);
          auto e = make_event(self->state.rec, event_type::killed);
          e.reason = kill_reason::orphaned;
          e.execution = current_execution(self->state.rec, now_ms());
          commit(self, std::move(e), [=](result<sandbox_record> r) {
            k(r);
            self->quit();
          });
        });
      return rp;
    },
    [=](atom::pause, bool keep_memory) -> caf::result<sandbox_record> {
      auto chk = check_transition(self->state.rec.state, sandbox_op::pause);
      if (!chk)
        return to_error(chk.error());
      auto rp = self->make_response_promise<sandbox_record>();
      pause_sandbox(self, keep_memory, deliver_to(rp));
      return rp;
    },
    [=](atom::connect, int64_t timeout_s) -> caf::result<connect_result> {
      auto chk = check_transition(self->state.rec.state, sandbox_op::resume);
      if (!chk)
        return to_error(chk.error());
      auto rp = self->make_response_promise<connect_result>();
      auto reply = [rp](bool resumed) mutable {
        return [rp, resumed](result<sandbox_record> r) mutable {
          if (r)
            rp.deliver(connect_result{std::move(*r), resumed});
          else
            rp.deliver(to_error(r.error()));
        };
      };
      if (self->state.rec.state == sandbox_state::running) {
        // Connecting to a running sandbox only ever extends its life.
        auto end_at = capped_end(self->state.rec, now_ms() + timeout_s * 1000);
        if (end_at <= self->state.rec.end_at_ms) {
          reply(false)(self->state.rec);
          return rp;
        }
        auto e = make_event(self->state.rec, event_type::updated);
        e.end_at_ms = end_at;
        e.timeout_s = timeout_s;
        commit(self, std::move(e), reply(false));
        return rp;
      }
      resume_sandbox(self, timeout_s, reply(true));
      return rp;
    },
    [=](atom::lost) {
      if (ended(self->state.rec))
        return;
      // Still booting: its `created` is about to be logged, then it ends.
      if (self->state.rec.state == sandbox_state::creating) {
        self->delayed_send(self, std::chrono::seconds(1), atom::lost::value);
        return;
      }
      spdlog::warn("sandbox {}: its node was lost", self->state.rec.id);
      auto e = make_event(self->state.rec, event_type::killed);
      e.reason = kill_reason::node_lost;
      e.execution = current_execution(self->state.rec, now_ms());
      commit(self, std::move(e), [=](result<sandbox_record> r) {
        if (!r)
          spdlog::error("sandbox {}: node_lost not logged: {}", self->state.rec.id,
                        r.error().message);
        self->quit();
      });
    },
    [=](atom::kill, kill_reason reason) -> caf::result<sandbox_record> {
      auto rp = self->make_response_promise<sandbox_record>();
      kill_sandbox(self, reason, deliver_to(rp));
      return rp;
    },
    [=](atom::timeout, int64_t timeout_s) -> caf::result<sandbox_record> {
      auto chk = check_transition(self->state.rec.state, sandbox_op::set_timeout);
      if (!chk)
        return to_error(chk.error());
      auto rp = self->make_response_promise<sandbox_record>();
      auto e = make_event(self->state.rec, event_type::updated);
      e.end_at_ms = capped_end(self->state.rec, now_ms() + timeout_s * 1000);
      e.timeout_s = timeout_s;
      commit(self, std::move(e), deliver_to(rp));
      return rp;
    },
    [=](atom::agent, const agent_frame& request,
        int64_t timeout_ms) -> caf::result<agent_frame> {
      auto op = parse_frame(request, 400);
      if (!op)
        return to_error(op.error());
      auto call = [op = *op, timeout_ms](const std::string& sock) -> result<agent_frame> {
        auto r = agent::call(sock, op, std::chrono::milliseconds(timeout_ms));
        if (!r)
          return r.error();
        return to_frame(*r);
      };
      return agent_job<agent_frame>(self, call);
    },
    [=](atom::exec, const agent_frame& request,
        int64_t timeout_ms) -> caf::result<exec_outcome> {
      auto op = parse_frame(request, 400);
      if (!op)
        return to_error(op.error());
      auto db = self->state.deps.db;
      auto id = self->state.rec.id;
      auto run = [op = *op, timeout_ms, db, id](const std::string& sock) -> result<exec_outcome> {
        // At most agent::kRunOutputLimit of each stream is kept.
        auto r = agent::run(sock, op, std::chrono::milliseconds(timeout_ms));
        if (r) {
          auto lines = exec_output_lines(*r);
          // The log keeps its newest 10,000 lines: write no more than that.
          if (lines.size() > 10000)
            lines.erase(lines.begin(), lines.end() - 10000);
          for (auto& l : lines)
            l.line = utf8_lossy(l.line);
          log_output(*db, id, lines);
        }
        // Whatever stopped the process from running is the sandbox's
        // failure, not the caller's: 502 with the agent's reason.
        if (!r)
          return bad_gateway("cannot run the process: " + r.error().message);
        // Output is bytes: what is not UTF-8 becomes U+FFFD.
        return exec_outcome{r->pid,
                            utf8_lossy(r->stdout_data),
                            utf8_lossy(r->stderr_data),
                            r->stdout_truncated,
                            r->stderr_truncated,
                            r->exit_code,
                            r->timed_out};
      };
      return agent_job<exec_outcome>(self, run);
    },
    [=](atom::metrics) -> caf::result<container_sample> {
      auto st = self->state.rec.state;
      if (st != sandbox_state::running && st != sandbox_state::paused)
        return to_error(not_found("sandbox not found"));
      auto rp = self->make_response_promise<container_sample>();
      auto rt = self->state.deps.runtime;
      auto& r = self->state.rec;
      auto id = r.id;
      auto cpu = r.cpu_count, mem = r.memory_mb, disk = r.disk_size_mb;
      run_blocking(self, false,
                   [=] { return rt->sample(id, cpu, mem, disk); },
                   deliver_to(rp));
      return rp;
    },
    [=](atom::endpoint) -> caf::result<std::string> {
      return once_usable<std::string>(self, [=](caf::typed_response_promise<std::string>& rp) {
        rp.deliver(self->state.deps.runtime->agent_socket(self->state.rec.id));
      });
    },
    [=](atom::relay, agent_frame& request,
        agent_sink_actor& sink) -> caf::result<agent_stream_actor> {
      using promise = caf::typed_response_promise<agent_stream_actor>;
      return once_usable<agent_stream_actor>(self, [=](promise& rp) {
        touch(self);
        auto sock = self->state.deps.runtime->agent_socket(self->state.rec.id);
        auto stream = spawn_agent_stream(self->home_system(), sock, request, sink,
                                         stream_log{self->state.deps.db, self->state.rec.id});
        self->monitor(stream);
        ++self->state.open_streams;
        rp.deliver(stream);
      });
    },
    [=](atom::idle, uint64_t generation) {
      auto& st = self->state;
      if (generation != st.idle_generation || st.rec.state != sandbox_state::running)
        return;
      // A one-shot agent at work is activity: idleness counts from its end.
      if (agent_running(st.rec))
        touch(self);
      auto left = st.last_activity_ms + st.rec.idle_timeout_s * 1000 - now_ms();
      if (left > 0) {
        self->delayed_send(self, std::chrono::milliseconds(left), atom::idle::value, generation);
        return;
      }
      spdlog::info("sandbox {}: idle for {} s", st.rec.id, st.rec.idle_timeout_s);
      kill_sandbox(self, kill_reason::idle,
                   retry_end(self, "idle timeout", atom::idle::value, generation));
    },
    [=](atom::snapshot, const std::string& name, bool hidden) -> caf::result<snapshot_info> {
      auto& rec = self->state.rec;
      if (rec.state != sandbox_state::running && rec.state != sandbox_state::paused)
        return to_error(check_transition(rec.state, sandbox_op::use).error());
      auto rp = self->make_response_promise<snapshot_info>();
      snapshot_info snap;
      snap.id = new_sandbox_id();
      snap.org_id = rec.org_id;
      snap.name = name;
      snap.sandbox_id = rec.id;
      snap.template_id = self->state.deps.base_template;
      snap.hidden = hidden;
      auto rt = self->state.deps.runtime;
      auto dest = rt->layer_dir(snap.id);
      snap.layers = {dest};
      snap.node = rt->node_of(rec.id); // the layer is copied where the sandbox runs
      for (auto& l : self->state.deps.layers)
        snap.layers.push_back(l);
      auto id = rec.id;
      bool thaw = rec.state == sandbox_state::running;
      auto db = self->state.deps.db;
      auto cap = self->state.deps.max_snapshots;
      auto org = rec.org_id;
      // Serialized: nothing else happens to the sandbox while it is frozen.
      run_blocking(
        self, true,
        [rt, id, dest, thaw, db, cap, org, snap]() -> result<snapshot_info> {
          // Each snapshot holds a copy of a sandbox's files: an org's count
          // is capped (its forks' hidden ones included, until they end).
          auto taken_already =
            db->snapshots(org, cap, [](const snapshot_info&) { return true; }, std::nullopt,
                          nullptr);
          if (!taken_already)
            return taken_already.error();
          if (taken_already->size() >= cap)
            return failure{429, "snapshot limit reached (" + std::to_string(cap)
                                  + " per org, forks' included while they run): delete some"};
          if (thaw)
            if (auto s = rt->pause(id); !s)
              return s.error();
          auto copied = rt->copy_layer(id, dest);
          if (thaw)
            if (auto s = rt->resume(id); !s)
              return s.error();
          if (!copied)
            return copied.error();
          auto taken = snap;
          taken.created_ms = now_ms();
          if (auto st = db->put_snapshot(taken); !st) {
            // A layer no snapshot owns is garbage.
            if (auto removed = rt->remove_layer(taken.id, taken.node); !removed)
              spdlog::error("snapshot {}: {}", taken.id, removed.error().message);
            return st.error();
          }
          return taken;
        },
        [=](result<snapshot_info> done) mutable {
          if (!done) {
            rp.deliver(to_error(done.error()));
            return;
          }
          spdlog::info("sandbox {}: snapshot {} taken", id, done->id);
          rp.deliver(std::move(*done));
        });
      return rp;
    },
    [=](atom::network, network_view& n) -> caf::result<sandbox_record> {
      auto& rec = self->state.rec;
      if (rec.state != sandbox_state::running && rec.state != sandbox_state::paused)
        return to_error(check_transition(rec.state, sandbox_op::use).error());
      auto rp = self->make_response_promise<sandbox_record>();
      auto k = deliver_to(rp);
      auto ext = network_ext(n);
      auto log_it = [=](status s) {
        if (!s)
          return k(s.error());
        commit_ext(self, ext, k);
      };
      if (lifecycle_of(rec).cold) {
        log_it(success()); // no container: applied when it boots again
        return rp;
      }
      auto rt = self->state.deps.runtime;
      auto id = rec.id;
      auto policy = policy_of(n, rec.org_id);
      run_blocking(self, true, [rt, id, policy] { return rt->update_network(id, policy); },
                   log_it);
      return rp;
    },
    [=](atom::cancel) -> caf::result<sandbox_record> {
      auto chk = check_transition(self->state.rec.state, sandbox_op::use);
      if (!chk)
        return to_error(chk.error());
      touch(self);
      auto a = agent_of(self->state.rec);
      if (a.name.empty())
        return to_error(conflict("this sandbox has no agent"));
      if (!agent_running(self->state.rec) || a.pid <= 0)
        return to_error(conflict("the agent is not running (" + (a.status.empty() ? std::string{"starting"} : a.status) + ")"));
      auto rp = self->make_response_promise<sandbox_record>();
      auto k = deliver_to(rp);
      auto sock = self->state.deps.runtime->agent_socket(self->state.rec.id);
      auto pid = a.pid;
      run_blocking(
        self, false,
        [sock, pid]() -> status {
          auto r = agent::call(sock, {{"op", "signal"}, {"pid", pid}, {"signal", "SIGTERM"}});
          // Gone already is fine: it ended on its own meanwhile.
          if (!r && r.error().status != 404)
            return r.error();
          return success();
        },
        [=](status s) {
          if (!s)
            return k(s.error());
          commit_ext(self, {{event_ext::agent_cancel, "user_request"}}, k);
          auto grace = agent_of(self->state.rec).cancel_grace_s;
          self->delayed_send(self, std::chrono::seconds(grace), atom::cancel::value, pid);
        });
      return rp;
    },
    [=](atom::cancel, int64_t pid) {
      auto a = agent_of(self->state.rec);
      if (self->state.rec.state != sandbox_state::running || !agent_running(self->state.rec)
          || a.pid != pid)
        return;
      spdlog::info("sandbox {}: agent {} ignored SIGTERM; killing it", self->state.rec.id, pid);
      auto sock = self->state.deps.runtime->agent_socket(self->state.rec.id);
      run_blocking(
        self, false,
        [sock, pid]() -> status {
          auto r = agent::call(sock, {{"op", "signal"}, {"pid", pid}, {"signal", "SIGKILL"}});
          return r ? success() : status{r.error()};
        },
        [](status) {});
    },
    [=](atom::agent_up, int64_t pid) {
      auto& rec = self->state.rec;
      if ((rec.state != sandbox_state::running && rec.state != sandbox_state::paused)
          || agent_of(rec).pid == pid)
        return;
      commit_ext(self, {{event_ext::agent_status, "running"}, {event_ext::agent_pid, std::to_string(pid)}},
                 [](result<sandbox_record>) {});
    },
    [=](atom::agent_end, int64_t exit_code, bool lost) {
      auto& rec = self->state.rec;
      if ((rec.state != sandbox_state::running && rec.state != sandbox_state::paused)
          || !agent_running(rec) || (lost && self->state.stopping))
        return;
      std::map<std::string, std::string> ext = {
        {event_ext::agent_status, !lost && exit_code == 0 ? "completed" : "failed"}};
      if (!lost)
        ext[event_ext::agent_exit_code] = std::to_string(exit_code);
      spdlog::info("sandbox {}: agent ended ({})", rec.id, lost ? "lost" : "exit " + std::to_string(exit_code));
      commit_ext(self, std::move(ext), [](result<sandbox_record>) {});
    },
    [=](atom::sample, uint64_t generation) {
      auto& st = self->state;
      if (generation != st.sample_generation || st.rec.state != sandbox_state::running)
        return;
      auto rt = st.deps.runtime;
      auto db = st.deps.db;
      auto& r = st.rec;
      auto id = r.id;
      auto cpu = r.cpu_count, mem = r.memory_mb, disk = r.disk_size_mb;
      run_blocking(
        self, false,
        [=]() -> status {
          auto s = rt->sample(id, cpu, mem, disk);
          if (!s)
            return s.error();
          return db->append_metric(id, *s);
        },
        [=](status s) {
          if (!s)
            spdlog::debug("sandbox {}: no sample: {}", id, s.error().message);
        });
    },
    [=](atom::expire, uint64_t generation) {
      if (generation != self->state.ttl_generation
          || self->state.rec.state != sandbox_state::running)
        return;
      spdlog::info("sandbox {}: timeout reached", self->state.rec.id);
      auto retry = retry_end(self, "timeout", atom::expire::value, generation);
      if (auto l = lifecycle_of(self->state.rec); l.pause_on_timeout)
        return pause_sandbox(self, l.keep_memory, retry);
      kill_sandbox(self, kill_reason::timeout, retry);
    },
  };
}

} // namespace

sandbox_actor spawn_sandbox(caf::actor_system& sys, sandbox_record rec,
                            sandbox_deps deps) {
  return sys.spawn(sandbox_behavior, std::move(rec), std::move(deps));
}

} // namespace sandboxd
