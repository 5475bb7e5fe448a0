// Builds of templates defined in code (E2B's Template.build): every step runs
// inside a sandbox started from the template the build starts from, with the
// same containment as any sandbox (root only inside its user namespace, the
// sandbox's network). Each step that changes files ends in a snapshot of the
// sandbox's writable layer (a hidden snapshot named "build:<cache key>"), and
// the next step runs in a fresh sandbox on that layer, so each layer holds
// one step's changes and an unchanged prefix of steps is reused from the
// cache. The template then starts sandboxes from its last layer.
#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "actors/agent_frame_json.hpp"
#include "actors/blocking.hpp"
#include "actors/template_builder_state.hpp"
#include "core/clock.hpp"
#include "core/fd_closer.hpp"
#include "core/ids.hpp"
#include "core/template_files.hpp"
#include "runtime/agent_client.hpp"
#include "storage/store.hpp"

namespace sandboxd {

namespace {

using json = nlohmann::json;
using self_ptr = builder_ptr;

constexpr int64_t build_sandbox_timeout_s = 40 * 60;  // one step and its layer (a restart leaves it to this)
constexpr int64_t step_timeout_ms = 30 * 60 * 1000;    // one RUN or COPY
constexpr int64_t ready_timeout_s = 120;               // the start command becoming ready
constexpr size_t max_output_lines = 2000;              // per stream of a step, in the build log

std::string cache_name(const std::string& key) {
  return "build:" + key;
}

// E2B numbers steps from 1 ("base" is 0, "finalize" the last).
std::string step_label(size_t i) {
  return std::to_string(i + 1);
}

step_job* job_of(self_ptr self, const std::string& build_id) {
  auto it = self->state.jobs.find(build_id);
  return it == self->state.jobs.end() ? nullptr : &it->second;
}

void note(self_ptr self, const step_job& j, const std::string& level, const std::string& step,
         const std::string& message) {
  log_line(*self->state.cfg.db, j.build_id, level, step, message);
}

// The process's output as build log lines (one write), bounded.
void log_output(self_ptr self, const step_job& j, const std::string& step, const exec_outcome& r) {
  std::vector<build_log_entry> lines;
  auto now = now_ms();
  auto add = [&](const std::string& text, bool truncated) {
    size_t n = 0, start = 0;
    while (start < text.size()) {
      auto end = text.find('\n', start);
      if (end == std::string::npos)
        end = text.size();
      if (++n <= max_output_lines)
        lines.push_back({now, "info", step, text.substr(start, end - start)});
      start = end + 1;
    }
    if (n > max_output_lines || truncated)
      lines.push_back({now, "warn", step, "(output cut: the build log keeps the first "
                                            + std::to_string(max_output_lines) + " lines)"});
  };
  add(r.stdout_text, r.stdout_truncated);
  add(r.stderr_text, r.stderr_truncated);
  if (lines.empty())
    return;
  if (auto s = self->state.cfg.db->append_build_logs(j.build_id, lines); !s)
    spdlog::warn("template build {}: output lines lost: {}", j.build_id, s.error().message);
}

// The last lines of a failed process's output, for the build's reason.
std::string tail_of(const exec_outcome& r) {
  auto text = r.stderr_text.empty() ? r.stdout_text : r.stderr_text;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.pop_back();
  if (text.size() > 600)
    text = "..." + text.substr(text.size() - 600);
  return text;
}

// The hidden snapshot that holds the layer of cache key `key`.
result<std::optional<snapshot_info>> cached_layer(const store& db, const std::string& org,
                                                  const std::string& key) {
  return db.find_snapshot_if(org, [&](const snapshot_info& s) {
    return is_template_layer(s) && s.name == cache_name(key);
  });
}

void pump_steps(self_ptr self);
void run_next(self_ptr self, const std::string& id);

// The build sandbox is no longer needed (a layer was taken, or the build
// ended): kill it; a failure is logged, its TTL ends it anyway.
void drop_sandbox(self_ptr self, step_job& j) {
  if (!j.sandbox)
    return;
  auto sb = *j.sandbox;
  auto sid = j.sandbox_id;
  j.sandbox.reset();
  j.sandbox_id.clear();
  self->request(sb, caf::infinite, atom::kill::value, kill_reason::request)
    .then([](sandbox_record&) {},
          [sid](caf::error& e) {
            spdlog::warn("template build sandbox {} not killed: {}", sid,
                         from_error(e).message);
          });
}

// Ends the build: failed at `step` for `why`, or ready.
void end_build(self_ptr self, const std::string& id, const std::string& step,
               const status& outcome) {
  auto* j = job_of(self, id);
  if (!j)
    return;
  drop_sandbox(self, *j);
  auto job = std::move(*j);
  self->state.jobs.erase(id);
  --self->state.step_builds;
  auto secs = (now_ms() - job.started_ms) / 1000.0;
  if (outcome)
    note(self, job, "info", "finalize", "build finished in " + std::to_string(secs).substr(0, 6)
                                         + " s");
  finish(self, job.org, id, outcome, [&](template_build& b) {
    if (!outcome) {
      b.failed_step = step;
      return;
    }
    b.snapshot_id = job.layer;
    b.parent = job.underlying;
    auto env = job.base_env;
    for (auto& [k, v] : job.ctx.env)
      env[k] = v;
    b.env = env;
    auto& req = job.req;
    // Sandboxes run it as the build's last USER in its last WORKDIR.
    b.start_cmd = req.start_cmd.empty() ? job.base_start_cmd : req.start_cmd;
    b.ready_port = !req.ready_cmd.empty()   ? ready_port_of(req.ready_cmd)
                   : req.start_cmd.empty() ? job.base_ready_port
                                           : 0;
    b.hash = job.layer;
    b.default_user = job.ctx.user;
    b.default_workdir = job.ctx.workdir;
  });
  pump_steps(self);
}

void fail(self_ptr self, const std::string& id, const std::string& step, const failure& f) {
  if (auto* j = job_of(self, id))
    note(self, *j, "error", step, f.message);
  end_build(self, id, step, f);
}

// Calls `then` with the build sandbox, starting one on the newest layer when
// none runs.
void with_sandbox(self_ptr self, const std::string& id, const std::string& step,
                  std::function<void(sandbox_actor)> then) {
  auto* j = job_of(self, id);
  if (!j)
    return;
  if (j->sandbox)
    return then(*j->sandbox);
  create_spec spec;
  spec.org_id = j->org;
  spec.template_id = j->layer.empty() ? j->start_ref : j->layer;
  spec.timeout_s = build_sandbox_timeout_s;
  spec.metadata = {{"sandboxd.templateBuild", id}};
  auto registry = self->state.cfg.registry;
  auto org = j->org;
  auto failed = [=](caf::error& e) {
    auto f = from_error(e);
    fail(self, id, step, {f.status, "cannot start the build sandbox: " + f.message});
  };
  self->request(registry, caf::infinite, atom::create::value, spec)
    .then(
      [=](sandbox_record& rec) {
        auto sid = rec.id;
        self->request(registry, caf::infinite, atom::lookup::value, org, sid)
          .then(
            [=](sandbox_actor& sb) {
              auto* j = job_of(self, id);
              if (!j) { // the build ended meanwhile
                self->request(sb, caf::infinite, atom::kill::value, kill_reason::request);
                return;
              }
              j->sandbox = sb;
              j->sandbox_id = sid;
              then(sb);
            },
            failed);
      },
      failed);
}

// Runs `script` with sh in the build sandbox as `user` in `cwd`; `then` on
// exit code 0, else the build fails at `step` with the output's tail.
void run_script(self_ptr self, const std::string& id, const std::string& step,
                const std::string& what, const std::string& script, const std::string& user,
                const std::string& cwd, int64_t timeout_ms, std::function<void()> then) {
  with_sandbox(self, id, step, [=](sandbox_actor sb) {
    auto* j = job_of(self, id);
    if (!j)
      return;
    json env = json::object();
    for (auto& [k, v] : j->base_env)
      env[k] = v;
    for (auto& [k, v] : j->ctx.env)
      env[k] = v;
    json op = {{"op", "exec"}, {"cmd", "/bin/sh"}, {"args", {"-c", script}},
               {"env", env},   {"user", user},    {"cwd", cwd},
               {"timeout_ms", timeout_ms},        {"stdin", false}};
    self->request(sb, caf::infinite, atom::exec::value, to_frame(op), timeout_ms + 10000)
      .then(
        [=](exec_outcome& r) {
          auto* j = job_of(self, id);
          if (!j)
            return;
          log_output(self, *j, step, r);
          if (r.timed_out)
            return fail(self, id, step,
                        {400, what + " timed out after "
                                + std::to_string(timeout_ms / 1000) + " s"});
          if (r.exit_code != 0) {
            auto tail = tail_of(r);
            return fail(self, id, step,
                        {400, what + " failed with exit code " + std::to_string(r.exit_code)
                                + (tail.empty() ? std::string{} : ": " + tail)});
          }
          then();
        },
        [=](caf::error& e) {
          fail(self, id, step, {502, what + " could not run: " + from_error(e).message});
        });
  });
}

// Copies the archive of a COPY step from the server's upload store into the
// build sandbox (through its agent, as root, never a host path the sandbox
// can change), then `then`.
void send_archive(self_ptr self, const std::string& id, const std::string& step,
                  const std::string& hash, const std::string& into, std::function<void()> then) {
  with_sandbox(self, id, step, [=](sandbox_actor sb) {
    auto* j = job_of(self, id);
    if (!j)
      return;
    auto from = template_file_path(self->state.cfg.data_dir, j->org, hash);
    self->request(sb, caf::infinite, atom::endpoint::value)
      .then(
        [=](std::string& socket) {
          run_blocking(
            self, false,
            [from, socket, into, hash]() -> status {
              fd_closer fd{::open(from.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
              if (fd.get() < 0)
                return bad_request("the files of this COPY (hash " + hash
                                   + ") were never uploaded: build with the SDK, which"
                                     " uploads them first");
              std::string chunk;
              bool broken = false;
              auto next = [&]() -> std::optional<std::string> {
                chunk.resize(1 << 20);
                auto n = ::read(fd.get(), chunk.data(), chunk.size());
                if (n < 0)
                  broken = true;
                if (n <= 0)
                  return std::nullopt;
                chunk.resize(static_cast<size_t>(n));
                return chunk;
              };
              auto sent = agent::write_stream(
                socket, {{"op", "write_stream"}, {"path", into}, {"user", "root"}}, next,
                std::chrono::minutes(10));
              if (broken)
                return internal_error("cannot read the uploaded files of hash " + hash);
              if (!sent)
                return sent.error();
              return success();
            },
            [=](status s) {
              if (!s)
                return fail(self, id, step, s.error());
              then();
            });
        },
        [=](caf::error& e) { fail(self, id, step, from_error(e)); });
  });
}

// Takes the layer after step `i` (cache key `key`) and drops the sandbox:
// the next step starts a fresh one on the new layer.
void take_layer(self_ptr self, const std::string& id, const std::string& step,
                const std::string& key, std::function<void()> then) {
  with_sandbox(self, id, step, [=](sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::snapshot::value, cache_name(key), true)
      .then(
        [=](snapshot_info& snap) {
          auto* j = job_of(self, id);
          if (!j)
            return;
          j->layer = snap.id;
          drop_sandbox(self, *j);
          then();
        },
        [=](caf::error& e) {
          auto f = from_error(e);
          fail(self, id, step, {f.status, "cannot keep the step's layer: " + f.message});
        });
  });
}

// The template's start command, checked: started in a sandbox on the last
// layer, its ready command must succeed within ready_timeout_s.
void check_ready(self_ptr self, const std::string& id) {
  auto* j = job_of(self, id);
  if (!j)
    return;
  auto& req = j->req;
  if (req.start_cmd.empty() || req.ready_cmd.empty())
    return end_build(self, id, "finalize", success());
  note(self, *j, "info", "finalize", "starting: " + req.start_cmd + "; waiting for: " + req.ready_cmd);
  // A port's readiness is probed without ss (not every template has it).
  auto ready = req.ready_cmd;
  if (auto port = ready_port_of(ready))
    ready = "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", "
            + std::to_string(port) + "), 1)'";
  auto script = "(" + req.start_cmd + ") > /tmp/.sandboxd-start.log 2>&1 &\n"
                "i=0\n"
                "while [ $i -lt " + std::to_string(ready_timeout_s * 2) + " ]; do\n"
                "  if sh -c " + shell_quote(ready) + " > /dev/null 2>&1; then exit 0; fi\n"
                "  sleep 0.5; i=$((i + 1))\n"
                "done\n"
                "echo 'the ready command never succeeded; the start command printed:' >&2\n"
                "tail -c 2000 /tmp/.sandboxd-start.log >&2\n"
                "exit 1\n";
  run_script(self, id, "finalize", "the start command's ready check", script, j->ctx.user,
             j->ctx.workdir, (ready_timeout_s + 30) * 1000,
             [=] { end_build(self, id, "finalize", success()); });
}

// After the steps: the template needs a layer even when no step changed
// files (its sandboxes start from one), then the ready check.
void finalize(self_ptr self, const std::string& id) {
  auto* j = job_of(self, id);
  if (!j)
    return;
  if (!j->layer.empty()) {
    drop_sandbox(self, *j);
    return check_ready(self, id);
  }
  auto& db = *self->state.cfg.db;
  if (!j->req.force) {
    auto cached = cached_layer(db, j->org, j->base_key);
    if (!cached)
      return fail(self, id, "finalize", cached.error());
    if (*cached) {
      j->layer = (*cached)->id;
      drop_sandbox(self, *j);
      return check_ready(self, id);
    }
  }
  take_layer(self, id, "finalize", j->base_key, [=] { check_ready(self, id); });
}

void run_next(self_ptr self, const std::string& id) {
  auto* j = job_of(self, id);
  if (!j)
    return;
  auto n = j->req.steps.size();
  if (j->next >= n)
    return finalize(self, id);
  auto i = j->next;
  auto& s = j->req.steps[i];
  auto label = step_label(i);
  auto what = "[" + std::to_string(i + 1) + "/" + std::to_string(n) + "] " + describe(s);
  note(self, *j, "info", label, what);
  if (!changes_files(s)) {
    apply_step(j->ctx, s);
    ++j->next;
    return run_next(self, id);
  }
  auto key = j->keys[i];
  auto done = [=] {
    auto* j = job_of(self, id);
    if (!j)
      return;
    apply_step(j->ctx, j->req.steps[i]);
    ++j->next;
    take_layer(self, id, label, key, [=] { run_next(self, id); });
  };
  if (s.type == "RUN") {
    auto user = s.args.size() > 1 && !s.args[1].empty() ? s.args[1] : j->ctx.user;
    return run_script(self, id, label, "RUN " + describe(s).substr(4), s.args[0], user,
                      j->ctx.workdir, step_timeout_ms, done);
  }
  if (s.type == "WORKDIR") {
    build_context after = j->ctx;
    apply_step(after, s);
    auto dir = shell_quote(after.workdir);
    auto script = "[ -d " + dir + " ] || { mkdir -p " + dir + " && chown " + shell_quote(j->ctx.user)
                  + ": " + dir + "; }";
    return run_script(self, id, label, "WORKDIR", script, "root", "/", step_timeout_ms, done);
  }
  // COPY
  auto archive = "/tmp/.sandboxd-copy-" + s.files_hash + ".tar";
  auto script = copy_script(s, j->ctx, archive);
  send_archive(self, id, label, s.files_hash, archive, [=] {
    run_script(self, id, label, describe(s), script, "root", "/", step_timeout_ms, done);
  });
}

// What a build starts from: a catalogue template, or the build of one of
// the org's own that "name:tag" names (its last layer, when defined in code).
status resolve_base(self_ptr self, step_job& j) {
  auto& cfg = self->state.cfg;
  auto ref = j.req.from_template;
  auto spec = cfg.templates->find(ref);
  if (auto named = split_template_ref(ref); !spec && named.tag == "default")
    spec = cfg.templates->find(named.name); // "base:default": the catalogue's has no other tag
  if (spec) {
    j.underlying = j.start_ref = spec->name;
    j.base_key = "catalogue:" + spec->name + ":" + spec->hash;
    j.base_env = spec->env;
    j.base_start_cmd = spec->start_cmd;
    j.base_ready_port = spec->ready_port;
    j.cpu_count = spec->cpu_count;
    j.memory_mb = spec->memory_mb;
    return success();
  }
  auto found = find_tagged_build(*cfg.db, j.org, ref);
  if (!found)
    return bad_request("fromTemplate: no template " + ref
                       + " (a template of this server, e.g. base, or one of your own)");
  if (!*found)
    return failure{found->error().status, "fromTemplate: " + found->error().message};
  auto& [t, b] = **found;
  if (t.id == j.template_id)
    return bad_request("fromTemplate: template " + ref + " cannot start from itself");
  if (b.code) {
    j.underlying = b.parent;
    j.start_ref = b.snapshot_id;
    j.base_key = "layer:" + b.snapshot_id;
    // Its last USER and WORKDIR carry on, as in a Dockerfile's FROM.
    if (!b.default_user.empty())
      j.ctx.user = b.default_user;
    if (!b.default_workdir.empty())
      j.ctx.workdir = b.default_workdir;
  } else {
    j.underlying = j.start_ref = t.id;
    j.base_key = "template:" + t.id + ":" + b.id;
  }
  j.base_env = b.env;
  j.base_start_cmd = b.start_cmd;
  j.base_ready_port = b.ready_port;
  j.cpu_count = b.cpu_count;
  j.memory_mb = b.memory_mb;
  return success();
}

// Starts a queued build: marks it building, skips the steps the cache
// holds, runs the rest.
void begin(self_ptr self, const std::string& id) {
  auto* j = job_of(self, id);
  auto& db = *self->state.cfg.db;
  auto records = build_records(db, j->org, j->template_id, id);
  if (!records)
    return fail(self, id, "base", records.error());
  auto& [t, b] = *records;
  b.status = build_status::building;
  b.updated_ms = now_ms();
  if (t.latest_build == b.id)
    t.latest_status = build_status::building;
  if (auto s = db.put_user_template(t, b); !s)
    return fail(self, id, "base", s.error());
  j->started_ms = now_ms();
  auto& req = j->req;
  note(self, *j, "info", "base",
      "FROM " + (req.from_image.empty() ? req.from_template
                                        : req.from_image + " (template " + req.from_template + ")"));
  j->keys = step_keys(j->base_key, req.steps);
  // The newest layer the cache holds: every step before it is replayed for
  // its user, workdir and environment only.
  size_t usable = req.steps.size();
  if (req.force)
    usable = 0;
  for (size_t i = 0; i < usable; ++i)
    if (req.steps[i].force)
      usable = i;
  size_t from = 0;
  for (size_t i = usable; i-- > 0;) {
    if (!changes_files(req.steps[i]))
      continue;
    auto cached = cached_layer(db, j->org, j->keys[i]);
    if (!cached)
      return fail(self, id, step_label(i), cached.error());
    if (*cached) {
      j->layer = (*cached)->id;
      from = i + 1;
      break;
    }
  }
  for (size_t i = 0; i < from; ++i) {
    apply_step(j->ctx, req.steps[i]);
    note(self, *j, "info", step_label(i),
        "CACHED [" + std::to_string(i + 1) + "/" + std::to_string(req.steps.size()) + "] "
          + describe(req.steps[i]));
  }
  j->next = from;
  run_next(self, id);
}

void pump_steps(self_ptr self) {
  auto& st = self->state;
  while (st.step_builds < max_step_builds && !st.step_queue.empty()) {
    auto id = st.step_queue.front();
    st.step_queue.pop_front();
    if (!st.jobs.count(id))
      continue;
    ++st.step_builds;
    begin(self, id);
  }
}

} // namespace

caf::result<user_template> create_code_template(self_ptr self, code_template_request& req) {
  auto& db = *self->state.cfg.db;
  auto found = template_named(db, req.org_id, req.name);
  if (!found)
    return to_error(found.error());
  auto& existing = *found;
  auto now = now_ms();
  user_template t;
  if (existing) {
    t = *existing;
    if (in_progress(t.latest_status)) {
      // A build that never got its steps (a client gone between the two
      // requests) gives way; one that runs does not.
      auto latest = db.find_template_build(t.id, t.latest_build);
      if (!latest)
        return to_error(latest.error());
      auto& b = *latest;
      if (!b || !b->code || b->steps)
        return to_error(conflict("template " + t.name + " is already building (build "
                                 + t.latest_build + "); rebuild it once that build has ended"));
      b->status = build_status::error;
      b->reason = "superseded by build of " + to_rfc3339(now) + " before its steps came";
      b->tags.clear(); // a failed build takes no tag
      b->updated_ms = b->finished_ms = now;
      if (auto s = db.put_user_template(t, *b); !s)
        return to_error(s.error());
    }
  } else {
    t.id = new_sandbox_id();
    t.org_id = req.org_id;
    t.name = req.name;
    t.created_ms = now;
  }
  template_build b;
  b.id = new_uuid();
  b.template_id = t.id;
  b.org_id = t.org_id;
  b.code = true;
  b.status = build_status::waiting;
  b.created_ms = b.updated_ms = now;
  b.tags = req.tags;
  if (req.cpu_count)
    b.cpu_count = *req.cpu_count;
  if (req.memory_mb)
    b.memory_mb = *req.memory_mb;
  // Kept on the record: they win over the base's once the steps name it.
  b.asked_cpu = req.cpu_count;
  b.asked_memory_mb = req.memory_mb;
  b.hash = "pending";
  t.updated_ms = now;
  ++t.build_count;
  t.latest_build = b.id;
  t.latest_status = build_status::waiting;
  if (auto s = db.put_user_template(t, b); !s)
    return to_error(s.error());
  log_line(db, b.id, "info", "", "build of template " + t.name + " requested; waiting for its steps");
  return t;
}

caf::result<bool> start_code_build(self_ptr self, const std::string& org,
                                   const std::string& template_id, const std::string& build_id,
                                   template_steps& steps) {
  auto& db = *self->state.cfg.db;
  auto records = build_records(db, org, template_id, build_id);
  if (!records)
    return to_error(records.error().status == 404
                      ? not_found("template " + template_id + " has no build " + build_id)
                      : records.error());
  auto& [t, b] = *records;
  if (!b.code || b.steps || b.status != build_status::waiting)
    return to_error(conflict("build " + build_id + " does not wait for steps (it is "
                             + to_string(b.status) + "); request a new build"));
  step_job j;
  j.org = org;
  j.template_id = t.id;
  j.build_id = b.id;
  j.req = steps;
  if (auto s = resolve_base(self, j); !s)
    return to_error(s.error());
  if (b.asked_cpu)
    j.cpu_count = *b.asked_cpu;
  if (b.asked_memory_mb)
    j.memory_mb = *b.asked_memory_mb;
  b.steps = steps;
  b.cpu_count = j.cpu_count;
  b.memory_mb = j.memory_mb;
  b.updated_ms = now_ms();
  if (auto s = db.put_user_template(t, b); !s)
    return to_error(s.error());
  log_line(db, b.id, "info", "",
           std::to_string(steps.steps.size()) + " steps from " + steps.from_template
             + (self->state.step_builds >= max_step_builds ? "; waiting for a build slot" : ""));
  self->state.template_of[b.id] = t.id;
  self->state.jobs[b.id] = std::move(j);
  self->state.step_queue.push_back(b.id);
  pump_steps(self);
  return true;
}

namespace {

// Removes layer `stack[i]` and, when it went, the one under it: a layer
// that another template's build ends in, or that anything rests on, stays
// (and so does everything under it).
void remove_layer_stack(self_ptr self, const std::string& org, std::vector<std::string> stack,
                        size_t i) {
  if (i >= stack.size())
    return;
  auto users = self->state.cfg.db->all_user_templates();
  if (!users)
    return spdlog::warn("template layer {} stays: {}", stack[i], users.error().message);
  for (auto& t : *users)
    if (t.org_id == org && t.ready && t.ready->snapshot_id == stack[i])
      return;
  auto id = stack[i];
  self->request(self->state.cfg.registry, caf::infinite, atom::remove::value, org, id)
    .then([=](bool) { remove_layer_stack(self, org, stack, i + 1); },
          [=](caf::error& e) {
            spdlog::debug("template layer {} stays: {}", id, from_error(e).message);
          });
}

} // namespace

void remove_code_layers(self_ptr self, const std::string& org,
                        std::vector<std::string> snapshot_ids) {
  for (auto& top : snapshot_ids) {
    auto snap = self->state.cfg.db->find_snapshot(org, top);
    if (!snap) {
      spdlog::warn("template layer {} stays: {}", top, snap.error().message);
      continue;
    }
    if (!*snap)
      continue;
    // The stack from the top down: each layer's id is its path's last part.
    std::vector<std::string> stack;
    for (auto& path : (*snap)->layers)
      stack.push_back(path.substr(path.rfind('/') + 1));
    remove_layer_stack(self, org, std::move(stack), 0);
  }
}

} // namespace sandboxd
