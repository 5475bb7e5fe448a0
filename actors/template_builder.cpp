#include "actors/template_builder.hpp"
#include "actors/template_builder_state.hpp"

#include <deque>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

#include "actors/blocking.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "core/template_tags.hpp"
#include "storage/store.hpp"

namespace sandboxd {

namespace {

using self_ptr = builder_ptr;

// mmdebstrap (and apt) mark their lines "E: ", "W: ", "I: ".
std::string level_of(const std::string& line) {
  if (line.rfind("E: ", 0) == 0 || line.rfind("Error", 0) == 0)
    return "error";
  if (line.rfind("W: ", 0) == 0)
    return "warn";
  return "info";
}

} // namespace

void log_line(store& db, const std::string& build_id, const std::string& level,
              const std::string& step, const std::string& message) {
  if (auto s = db.append_build_logs(build_id, {{now_ms(), level, step, message}}); !s)
    spdlog::warn("template build {}: a log line is lost: {}", build_id, s.error().message);
}

result<std::optional<user_template>> template_named(const store& db, const std::string& org,
                                                    const std::string& name) {
  auto found = db.find_user_template(org, name);
  if (!found)
    return found.error();
  if (*found && (*found)->name != name)
    return conflict("the name " + name + " is the id of another template");
  return found;
}

// A build and its template as stored: a failure when either cannot be read
// or is gone.
result<std::pair<user_template, template_build>>
build_records(const store& db, const std::string& org, const std::string& template_id,
              const std::string& build_id) {
  auto b = db.find_template_build(template_id, build_id);
  if (!b)
    return b.error();
  auto t = db.find_user_template(org, template_id);
  if (!t)
    return t.error();
  if (!*b || !*t)
    return not_found("its records are gone");
  return std::make_pair(std::move(**t), std::move(**b));
}

namespace {

// A build that ended ready takes the tags it asked for from the template's
// other builds (while it built they still named those); a failed one takes
// none. Returns the builds to store with the template, `b` first.
std::vector<template_build> settle_tags(store& db, template_build& b, const status& outcome,
                                        int64_t now) {
  if (!outcome) {
    b.tags.clear();
    b.tag_times.clear();
    return {b};
  }
  auto builds = db.template_builds(b.template_id);
  if (!builds) {
    // Ready all the same: its tags stay with the builds that hold them.
    std::string asked;
    for (auto& t : b.tags)
      asked += (asked.empty() ? "" : ", ") + t;
    log_line(db, b.id, "error", "finalize",
             "the tags " + asked + " stay where they were: " + builds.error().message);
    spdlog::error("template build {}: tags not moved: {}", b.id, builds.error().message);
    b.tags.clear();
    return {b};
  }
  return move_tags(*builds, b, b.tags, now);
}

} // namespace

// The build is over: record how it ended, on the build and its template.
void finish(builder_ptr self, const std::string& org, const std::string& build_id,
            const status& outcome, const std::function<void(template_build&)>& fill) {
  auto& db = *self->state.cfg.db;
  auto tid = self->state.template_of[build_id];
  self->state.template_of.erase(build_id);
  auto records = build_records(db, org, tid, build_id);
  if (!records) {
    // Left as it was: a restart fails a build that never ended in the store.
    spdlog::error("template build {} ended ({}), but {}", build_id,
                  outcome ? "ready" : outcome.error().message, records.error().message);
    return;
  }
  auto& [t, b] = *records;
  auto now = now_ms();
  if (fill)
    fill(b);
  b.status = outcome ? build_status::ready : build_status::error;
  b.reason = outcome ? "" : outcome.error().message;
  b.updated_ms = b.finished_ms = now;
  if (t.latest_build == b.id)
    t.latest_status = b.status;
  auto changed = settle_tags(db, b, outcome, now);
  if (outcome)
    t.ready = changed.front();
  t.updated_ms = now;
  if (outcome)
    log_line(db, b.id, "info", "finalize", "template " + t.name + " is ready (build " + b.id + ")");
  else
    log_line(db, b.id, "error", "finalize", "build failed: " + b.reason);
  if (auto st = db.put_template_and_builds(t, changed); !st)
    spdlog::error("template {}: cannot store the end of build {}: {}", t.id, b.id,
                  st.error().message);
  spdlog::info("template {} ({}) build {}: {}", t.id, t.name, b.id, to_string(b.status));
}

namespace {

// Starts the next waiting build unless one runs.
void pump(self_ptr self) {
  auto& st = self->state;
  while (!st.busy && !st.queue.empty()) {
    auto org = st.queue.front().first;
    auto build_id = st.queue.front().second;
    st.queue.pop_front();
    auto& db = *st.cfg.db;
    auto tid = st.template_of[build_id];
    auto records = build_records(db, org, tid, build_id);
    if (!records || records->second.status != build_status::waiting) {
      // Unreadable: it stays waiting in the store, and a restart fails it.
      if (!records)
        spdlog::error("template build {} not started: {}", build_id, records.error().message);
      st.template_of.erase(build_id);
      continue;
    }
    auto& [t, b] = *records;
    b.status = build_status::building;
    b.updated_ms = now_ms();
    if (t.latest_build == b.id)
      t.latest_status = build_status::building;
    if (auto s = db.put_user_template(t, b); !s) {
      finish(self, org, build_id, s.error());
      continue;
    }
    st.busy = true;
    auto spec = template_catalog::user_spec(t, b);
    auto cat = st.cfg.templates;
    auto dbp = st.cfg.db;
    run_blocking(
      self, false,
      [cat, dbp, spec, build_id]() -> status {
        log_line(*dbp, build_id, "info", "base",
                 "building: " + std::to_string(spec.packages.size()) + " packages on "
                   + spec.extends + " (" + spec.hash + ")");
        // The first error line (apt's "E: Unable to locate package x") is
        // the reason a failed build gives.
        std::string first_error;
        auto st = cat->build(spec, [&](const std::string& line) {
          auto level = level_of(line);
          if (level == "error" && first_error.empty())
            first_error = line.size() > 300 ? line.substr(0, 300) + "..." : line;
          log_line(*dbp, build_id, level, "base", line);
        });
        if (st || first_error.empty())
          return st;
        return failure{st.error().status, first_error + " (" + st.error().message + ")"};
      },
      [=](status s) {
        finish(self, org, build_id, s);
        self->state.busy = false;
        pump(self);
      });
  }
}

// The org's template `ref` with its builds (newest first); 404 when the
// org has no such template.
result<std::pair<user_template, std::vector<template_build>>>
template_with_builds(const store& db, const std::string& org, const std::string& ref) {
  auto found = db.find_user_template(org, ref);
  if (!found)
    return found.error();
  if (!*found)
    return not_found("template " + ref + " not found");
  auto builds = db.template_builds((*found)->id);
  if (!builds)
    return builds.error();
  return std::make_pair(std::move(**found), std::move(*builds));
}

// POST /templates/tags: `tags` go to the build `target` names; its id.
caf::result<std::string> assign_tags(self_ptr self, const std::string& org,
                                     const std::string& target,
                                     const std::vector<std::string>& tags) {
  auto& db = *self->state.cfg.db;
  auto ref = split_template_ref(target);
  auto found = template_with_builds(db, org, ref.name);
  if (!found)
    return to_error(found.error());
  auto& [t, builds] = *found;
  auto* b = tagged_build(builds, ref.tag);
  if (!b)
    return to_error(not_found("template " + t.name + " has no ready build tagged " + ref.tag));
  auto now = now_ms();
  auto changed = move_tags(builds, *b, tags, now);
  refresh_ready(t, changed);
  t.updated_ms = now;
  if (auto s = db.put_template_and_builds(t, changed); !s)
    return to_error(s.error());
  spdlog::info("template {} ({}): build {} tagged", t.id, t.name, b->id);
  return b->id;
}

// DELETE /templates/tags: `tags` leave the builds of template `name`.
caf::result<bool> remove_tags(self_ptr self, const std::string& org, const std::string& name,
                              const std::vector<std::string>& tags) {
  auto& db = *self->state.cfg.db;
  auto found = template_with_builds(db, org, name);
  if (!found)
    return to_error(found.error());
  auto& [t, builds] = *found;
  auto changed = take_tags(builds, tags, t.name);
  if (!changed)
    return to_error(changed.error());
  refresh_ready(t, *changed);
  t.updated_ms = now_ms();
  if (auto s = db.put_template_and_builds(t, *changed); !s)
    return to_error(s.error());
  return true;
}

template_builder_actor::behavior_type builder_behavior(self_ptr self,
                                                       template_builder_config cfg) {
  self->state.cfg = std::move(cfg);
  if (!self->state.cfg.leftovers.empty()) {
    // Before any build: what interrupted builds left, once their mmdebstrap
    // (which outlives the server for a moment) has stopped.
    self->state.busy = true;
    auto cat = self->state.cfg.templates;
    auto specs = std::move(self->state.cfg.leftovers);
    run_blocking(
      self, false,
      [cat, specs]() -> status {
        for (auto& s : specs)
          if (auto st = cat->discard_partial(s); !st)
            spdlog::warn("template {}: {}", s.name, st.error().message);
        return success();
      },
      [=](status) {
        self->state.busy = false;
        pump(self);
      });
  }
  return {
    [=](atom::create, template_request& req) -> caf::result<user_template> {
      auto& st = self->state;
      auto& db = *st.cfg.db;
      auto recipe = st.cfg.templates->recipe(req);
      if (!recipe)
        return to_error(recipe.error());
      auto found = template_named(db, req.org_id, req.name);
      if (!found)
        return to_error(found.error());
      auto& existing = *found;
      auto now = now_ms();
      user_template t;
      if (existing) {
        t = *existing;
        if (in_progress(t.latest_status))
          return to_error(conflict("template " + t.name + " is already building (build "
                                   + t.latest_build + ", " + to_string(t.latest_status)
                                   + "); rebuild it once that build has ended"));
      } else {
        t.id = new_sandbox_id();
        t.org_id = req.org_id;
        t.name = req.name;
        t.created_ms = now;
      }
      auto b = std::move(*recipe);
      b.id = new_uuid();
      b.template_id = t.id;
      b.org_id = t.org_id;
      b.status = build_status::waiting;
      b.created_ms = b.updated_ms = now;
      t.updated_ms = now;
      ++t.build_count;
      t.latest_build = b.id;
      t.latest_status = build_status::waiting;
      if (auto s = db.put_user_template(t, b); !s)
        return to_error(s.error());
      log_line(db, b.id, "info", "",
               std::string{existing ? "rebuild" : "build"} + " of template " + t.name
                 + " queued (extends " + b.parent + ", "
                 + std::to_string(req.packages.size()) + " packages of its own)");
      st.template_of[b.id] = t.id;
      st.queue.emplace_back(t.org_id, b.id);
      if (st.busy)
        log_line(db, b.id, "info", "", "waiting for the build before it to end");
      pump(self);
      return t;
    },
    [=](atom::create, code_template_request& req) -> caf::result<user_template> {
      return create_code_template(self, req);
    },
    [=](atom::start, const std::string& org, const std::string& template_id,
        const std::string& build_id, template_steps& steps) -> caf::result<bool> {
      return start_code_build(self, org, template_id, build_id, steps);
    },
    [=](atom::tag, const std::string& org, const std::string& target,
        const std::vector<std::string>& tags) -> caf::result<std::string> {
      return assign_tags(self, org, target, tags);
    },
    [=](atom::untag, const std::string& org, const std::string& name,
        const std::vector<std::string>& tags) -> caf::result<bool> {
      return remove_tags(self, org, name, tags);
    },
    [=](atom::remove, const std::string& org,
        const std::string& ref) -> caf::result<bool> {
      auto db = self->state.cfg.db;
      auto found = db->find_user_template(org, ref);
      if (!found)
        return to_error(found.error());
      auto& t = *found;
      if (!t)
        return to_error(not_found("template not found"));
      auto builds = db->template_builds(t->id);
      if (!builds)
        return to_error(builds.error());
      // A build defined in code that never got its steps holds nothing.
      auto pending = [](const template_build& b) {
        return b.code && !b.steps && b.status == build_status::waiting;
      };
      std::set<std::string> layers; // the final layers of its builds in code
      for (auto& b : *builds) {
        if (in_progress(b.status) && !pending(b))
          return to_error(conflict("template " + t->name + " is building (build " + b.id
                                   + "); delete it once that build has ended"));
        if (!b.snapshot_id.empty())
          layers.insert(b.snapshot_id);
      }
      auto snaps = db->snapshots(
        org, 1, [&](const snapshot_info& s) { return s.template_id == t->id; }, std::nullopt,
        nullptr);
      if (!snaps)
        return to_error(snaps.error());
      if (!snaps->empty())
        return to_error(conflict("template " + t->name + " is in use: snapshot "
                                 + public_id(snaps->front()) + " rests on it"));
      auto rp = self->make_response_promise<bool>();
      auto id = t->id;
      auto tpl = *t;
      self->request(self->state.cfg.registry, caf::infinite, atom::list::value, org)
        .then(
          [=](std::vector<sandbox_record>& recs) mutable {
            for (auto& r : recs)
              if ((r.template_id == id || layers.count(r.template_id))
                  && r.state != sandbox_state::stopped
                  && r.state != sandbox_state::error) {
                rp.deliver(to_error(conflict("template " + tpl.name + " is in use by sandbox "
                                             + r.id + " (" + to_string(r.state) + ")")));
                return;
              }
            // Still idle? A build may have been queued meanwhile.
            auto found = self->state.cfg.db->find_user_template(org, id);
            if (!found || !*found) {
              rp.deliver(to_error(found ? not_found("template not found") : found.error()));
              return;
            }
            auto& now = *found;
            if (now->latest_build != tpl.latest_build) {
              rp.deliver(to_error(conflict("template " + tpl.name + " is building")));
              return;
            }
            if (auto s = self->state.cfg.db->delete_user_template(*now); !s) {
              rp.deliver(to_error(s.error()));
              return;
            }
            auto cat = self->state.cfg.templates;
            run_blocking(
              self, false, [cat, id] { return cat->remove_user_template(id); },
              [=](status s) mutable {
                if (!s)
                  spdlog::warn("template {}: {}", id, s.error().message);
                spdlog::info("template {} ({}) deleted", id, tpl.name);
                remove_code_layers(self, org, {layers.begin(), layers.end()});
                rp.deliver(true);
              });
          },
          [=](caf::error& e) mutable { rp.deliver(e); });
      return rp;
    },
  };
}

} // namespace

result<size_t> fail_interrupted_builds(store& db, const template_catalog& cat,
                                       std::vector<template_spec>* leftovers) {
  size_t n = 0;
  auto templates = db.all_user_templates();
  if (!templates)
    return templates.error();
  for (auto& t : *templates) {
    auto changed = t;
    auto builds = db.template_builds(t.id);
    if (!builds)
      return builds.error();
    for (auto& b : *builds) {
      if (!in_progress(b.status))
        continue;
      auto was = b.status;
      b.status = build_status::error;
      b.reason = "interrupted by a restart (it was " + to_string(was)
                 + "); POST the template again to rebuild it";
      b.updated_ms = b.finished_ms = now_ms();
      b.tags.clear(); // a failed build takes no tag
      if (was == build_status::building && !b.code) {
        auto spec = template_catalog::user_spec(t, b);
        if (leftovers)
          leftovers->push_back(spec);
        else if (auto s = cat.discard_partial(spec); !s)
          spdlog::warn("template {}: {}", t.id, s.error().message);
      }
      log_line(db, b.id, "error", "finalize", "build failed: " + b.reason);
      if (changed.latest_build == b.id)
        changed.latest_status = build_status::error;
      changed.updated_ms = b.updated_ms;
      if (auto s = db.put_user_template(changed, b); !s)
        spdlog::error("template {}: cannot mark build {} failed: {}", t.id, b.id,
                      s.error().message);
      spdlog::warn("template {} ({}): build {} was interrupted by a restart", t.id, t.name, b.id);
      ++n;
    }
  }
  return n;
}

template_builder_actor spawn_template_builder(caf::actor_system& sys,
                                              template_builder_config cfg) {
  // Detached: its handlers read and write the store (synced), which must not
  // hold a scheduler thread; builds are rare, so one thread of its own is cheap.
  return sys.spawn<caf::detached>(builder_behavior, std::move(cfg));
}

std::optional<result<std::pair<user_template, template_build>>>
find_tagged_build(const store& db, const std::string& org, const std::string& ref_text) {
  using found_build = result<std::pair<user_template, template_build>>;
  auto ref = split_template_ref(ref_text);
  auto found = db.find_user_template(org, ref.name);
  if (!found)
    return found_build{found.error()};
  auto& t = *found;
  if (!t)
    return std::nullopt;
  auto builds = db.template_builds(t->id);
  if (!builds)
    return found_build{builds.error()};
  if (auto* b = tagged_build(*builds, ref.tag))
    return found_build{std::make_pair(*t, *b)};
  auto building = in_progress(t->latest_status)
                    ? " (build " + t->latest_build + " is " + to_string(t->latest_status)
                        + "; GET /templates/" + t->id + "/builds/" + t->latest_build
                        + "/status says when it is ready)"
                    : std::string{};
  if (ref.tag != "default" || t->ready)
    return found_build{not_found("template " + t->name + " has no ready build tagged " + ref.tag
                                 + building + "; GET /templates/" + t->id + "/tags lists its tags")};
  if (!building.empty())
    return found_build{conflict("template " + t->name + " is still building" + building
                                + "; create sandboxes from it once it is ready")};
  auto b = db.find_template_build(t->id, t->latest_build);
  if (!b)
    return found_build{b.error()};
  auto& why = *b;
  return found_build{
    conflict("template " + t->name + " has no successful build: build " + t->latest_build
             + " failed" + (why && !why->reason.empty() ? ": " + why->reason : std::string{}))};
}

std::optional<result<template_spec>>
find_user_template_spec(const store& db, const std::string& org, const std::string& ref) {
  auto found = find_tagged_build(db, org, ref);
  if (!found)
    return std::nullopt;
  if (!*found)
    return result<template_spec>{found->error()};
  auto& [t, b] = **found;
  return result<template_spec>{template_catalog::user_spec(t, b)};
}

} // namespace sandboxd
