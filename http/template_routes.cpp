// Templates (E2B's shapes): the catalogue's templates (public, every org sees
// them) and each org's own, built from a declarative spec of Debian packages
// by the template builder actor. Reads come from the catalogue and the store;
// the one write path (create, delete) goes through the builder actor. An
// org's template is invisible to every other org: 404, never listed.
#include <algorithm>
#include <cstdlib>
#include <tuple>

#include "actors/registry.hpp"
#include "core/clock.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/e2b_json.hpp"
#include "http/routes.hpp"
#include "runtime/templates.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

// Per template id: how many sandboxes the org made from it, and when last.
using usage = std::map<std::string, template_usage>;

int disk_size_mb() {
  return registry_config{}.disk_size_mb;
}

// spawnCount and lastSpawnedAt of template `id`.
json spawned(const usage& u, const std::string& id, json out) {
  auto i = u.find(id);
  out["spawnCount"] = i == u.end() ? 0 : i->second.count;
  out["lastSpawnedAt"] = i == u.end() || i->second.last_ms == 0
                           ? json(nullptr)
                           : json(to_rfc3339(i->second.last_ms));
  return out;
}

// When the server started: the creation time of a catalogue template that
// is not built yet.
int64_t server_start_ms() {
  static const int64_t at = now_ms();
  return at;
}

// A catalogue template as E2B's Template: public, its name as its id; one
// the server builds as it runs shows how far it is (buildProgress).
json catalog_json(const template_catalog& cat, const catalogue_builds* builds,
                  const template_spec& s, const usage& u) {
  auto built = cat.is_built(s);
  auto at = built ? cat.built_at_ms(s) : server_start_ms();
  auto names = json::array({s.name});
  for (auto& a : s.aliases)
    names.push_back(a);
  json j = {{"templateID", s.name},
            {"buildID", s.hash},
            {"cpuCount", s.cpu_count},
            {"memoryMB", s.memory_mb},
            {"diskSizeMB", disk_size_mb()},
            {"public", true},
            {"aliases", s.aliases},
            {"names", names},
            {"createdAt", to_rfc3339(at)},
            {"updatedAt", to_rfc3339(at)},
            {"createdBy", nullptr},
            {"buildCount", built ? 1 : 0},
            {"buildStatus", built ? "ready" : "waiting"},
            {"envdVersion", envd_version}};
  if (auto p = builds ? builds->progress(s.name) : std::nullopt) {
    if (!built)
      j["buildStatus"] = build_status_name(p->state);
    json progress = {{"steps", p->lines}, {"lastStep", p->last_line}};
    if (p->started_ms)
      progress["startedAt"] = to_rfc3339(p->started_ms);
    if (!p->error.empty())
      progress["error"] = p->error;
    j["buildProgress"] = progress;
  }
  return spawned(u, s.name, j);
}

// A catalogue template's build status as E2B names them.
std::string catalog_build_status(const api_context& ctx, const template_spec& s) {
  if (ctx.templates->is_built(s))
    return "ready";
  auto p = ctx.background_builds ? ctx.background_builds->progress(s.name) : std::nullopt;
  return p ? build_status_name(p->state) : "waiting";
}

// The build whose resources a template shows: its newest successful one,
// else its newest.
result<std::optional<template_build>> shown_build(const store& db, const user_template& t) {
  if (t.ready)
    return t.ready;
  return db.find_template_build(t.id, t.latest_build);
}

// An org's own template as E2B's Template.
result<json> own_json(const store& db, const user_template& t, const usage& u) {
  auto shown = shown_build(db, t);
  if (!shown)
    return shown.error();
  auto& b = *shown;
  json j = {{"templateID", t.id},
            {"buildID", b ? b->id : t.latest_build},
            {"cpuCount", b ? b->cpu_count : 0},
            {"memoryMB", b ? b->memory_mb : 0},
            {"diskSizeMB", disk_size_mb()},
            {"public", false},
            {"aliases", {t.name}},
            {"names", {t.name}},
            {"createdAt", to_rfc3339(t.created_ms)},
            {"updatedAt", to_rfc3339(t.updated_ms)},
            {"createdBy", nullptr},
            {"buildCount", t.build_count},
            {"buildStatus", to_string(t.latest_status)},
            {"envdVersion", envd_version}};
  return spawned(u, t.id, j);
}

// E2B's TemplateBuild.
json build_json(const template_build& b) {
  json j = {{"buildID", b.id},
            {"status", to_string(b.status)},
            {"createdAt", to_rfc3339(b.created_ms)},
            {"updatedAt", to_rfc3339(b.updated_ms)},
            {"cpuCount", b.cpu_count},
            {"memoryMB", b.memory_mb},
            {"diskSizeMB", disk_size_mb()},
            {"envdVersion", envd_version}};
  if (b.finished_ms)
    j["finishedAt"] = to_rfc3339(b.finished_ms);
  return j;
}

// E2B's BuildLogEntry.
json log_json(const build_log_entry& e) {
  json j = {{"timestamp", to_rfc3339(e.timestamp_ms)}, {"level", e.level}, {"message", e.message}};
  if (!e.step.empty())
    j["step"] = e.step;
  return j;
}

int level_rank(const std::string& level) {
  static const std::vector<std::string> order = {"debug", "info", "warn", "error"};
  auto i = std::find(order.begin(), order.end(), level);
  return i == order.end() ? 1 : static_cast<int>(i - order.begin());
}

// A build's progress lines (build_logs' arguments) as E2B's BuildLogEntry.
result<json> log_entries(const store& db, const std::string& build_id, size_t offset,
                         size_t limit, const std::function<bool(const build_log_entry&)>& keep) {
  auto lines = db.build_logs(build_id, offset, limit, keep);
  if (!lines)
    return lines.error();
  auto arr = json::array();
  for (auto& e : *lines)
    arr.push_back(log_json(e));
  return arr;
}

// The org's template `ref` as E2B's Template, with its builds (newest
// first); 404 when the org has none of that id or name.
result<std::pair<json, std::vector<json>>> own_template(const store& db, const std::string& org,
                                                        const std::string& ref, const usage& u) {
  auto t = db.find_user_template(org, ref);
  if (!t)
    return t.error();
  if (!*t)
    return not_found("template not found");
  auto j = own_json(db, **t, u);
  if (!j)
    return j.error();
  auto stored = db.template_builds((*t)->id);
  if (!stored)
    return stored.error();
  std::vector<json> builds;
  for (auto& b : *stored)
    builds.push_back(build_json(b));
  return std::make_pair(std::move(*j), std::move(builds));
}

// Asks the registry for the org's sandboxes, then answers with `f(usage)`.
template <class F>
void with_usage(api_context& ctx, const request& req, F f) {
  auto org = req.org;
  auto reg = ctx.registry;
  auto out = req.out;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::stats::value, org)
      .then([=](usage& u) { f(u); }, reply_error_to(out));
  });
}

// Every template the org sees, in listing order: the catalogue's, then the
// org's own, oldest first; each with its cursor.
result<std::vector<std::pair<std::string, json>>>
visible(const template_catalog& cat, const catalogue_builds* builds, const store& db,
        const std::string& org, const usage& u) {
  std::vector<std::pair<std::string, json>> all;
  auto specs = cat.all();
  for (size_t i = 0; i < specs.size(); ++i)
    all.emplace_back("c" + std::to_string(i), catalog_json(cat, builds, specs[i], u));
  auto own = db.user_templates(org);
  if (!own)
    return own.error();
  for (auto& t : *own) {
    auto j = own_json(db, t, u);
    if (!j)
      return j.error();
    all.emplace_back("u" + std::to_string(t.created_ms) + "_" + t.id, std::move(*j));
  }
  return all;
}

// Whether cursor `a` sorts after `b` in listing order (catalogue first).
bool cursor_after(const std::string& a, const std::string& b) {
  if (a[0] != b[0])
    return a[0] == 'u';
  if (a[0] == 'c')
    return std::stoll(a.substr(1)) > std::stoll(b.substr(1));
  auto sa = a.find('_'), sb = b.find('_');
  auto ta = std::stoll(a.substr(1, sa - 1)), tb = std::stoll(b.substr(1, sb - 1));
  return ta != tb ? ta > tb : a.substr(sa + 1) > b.substr(sb + 1);
}

bool valid_cursor(const std::string& c) {
  if (c.size() < 2 || (c[0] != 'c' && c[0] != 'u'))
    return false;
  auto digits = c[0] == 'c' ? c.substr(1) : c.substr(1, c.find('_') - 1);
  if (digits.empty() || digits.size() > 19
      || !std::all_of(digits.begin(), digits.end(), [](char x) { return x >= '0' && x <= '9'; }))
    return false;
  if (c[0] == 'u') {
    auto sep = c.find('_');
    return sep != std::string::npos && sep + 1 < c.size();
  }
  return true;
}

} // namespace

// GET /templates (deprecated in E2B, still used): every template the org sees.
void list_templates(api_context& ctx, request& req) {
  auto out = req.out;
  auto org = req.org;
  auto cat = ctx.templates;
  auto progress = ctx.background_builds;
  auto db = ctx.db;
  with_usage(ctx, req, [=](const usage& u) {
    auto all = visible(*cat, progress.get(), *db, org, u);
    if (!all)
      return out->send_error(all.error());
    auto arr = json::array();
    for (auto& [cursor, j] : *all)
      arr.push_back(j);
    out->send_json(200, arr);
  });
}

// GET /v2/templates?limit&nextToken: the same list in pages, X-Next-Token
// when more follow; the cursor stays put while templates are added.
void list_templates_v2(api_context& ctx, request& req) {
  auto limit = int_param(req.query_param("limit"), "limit", 100, 1, 100);
  if (!limit)
    return req.out->send_error(limit.error());
  auto token = req.query_param("nextToken").value_or("");
  if (!token.empty() && !valid_cursor(token))
    return req.out->send_error(bad_request("nextToken is not a token this server gave out"));
  auto out = req.out;
  auto org = req.org;
  auto n = static_cast<size_t>(*limit);
  auto cat = ctx.templates;
  auto progress = ctx.background_builds;
  auto db = ctx.db;
  with_usage(ctx, req, [=](const usage& u) {
    auto all = visible(*cat, progress.get(), *db, org, u);
    if (!all)
      return out->send_error(all.error());
    auto arr = json::array();
    std::string last;
    bool more = false;
    for (auto& [cursor, j] : *all) {
      if (!token.empty() && !cursor_after(cursor, token))
        continue;
      if (arr.size() == n) {
        more = true;
        break;
      }
      arr.push_back(j);
      last = cursor;
    }
    std::map<std::string, std::string> headers;
    if (more)
      headers["X-Next-Token"] = last;
    out->send_json_with_headers(200, arr, headers);
  });
}

// POST /templates {name, extends, packages, env, startCmd, cpuCount, memoryMB}
// → 202 E2B's TemplateRequestResponseV3 {templateID, buildID, names,
// aliases, public, tags}; the build runs on; poll its status route.
void create_template(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto spec = parse_template_request(*body, req.org);
  if (!spec)
    return req.out->send_error(spec.error());
  request_template(ctx, req, *spec, {});
}

// GET /templates/:id → E2B's TemplateWithBuilds (builds newest first;
// limit, nextToken = the last build id of the previous page).
void get_template(api_context& ctx, request& req) {
  auto limit = int_param(req.query_param("limit"), "limit", 100, 1, 100);
  if (!limit)
    return req.out->send_error(limit.error());
  auto token = req.query_param("nextToken").value_or("");
  auto ref = req.params.at("id");
  auto out = req.out;
  auto org = req.org;
  auto n = static_cast<size_t>(*limit);
  auto cat = ctx.templates;
  auto progress = ctx.background_builds;
  auto db = ctx.db;
  with_usage(ctx, req, [=](const usage& u) {
    json j;
    std::vector<json> builds;
    if (auto s = cat->find(ref)) {
      j = catalog_json(*cat, progress.get(), *s, u);
      builds.push_back({{"buildID", s->hash},
                        {"status", j["buildStatus"]},
                        {"createdAt", j["createdAt"]},
                        {"updatedAt", j["updatedAt"]},
                        {"cpuCount", s->cpu_count},
                        {"memoryMB", s->memory_mb},
                        {"diskSizeMB", disk_size_mb()},
                        {"envdVersion", envd_version}});
      if (cat->is_built(*s))
        builds.back()["finishedAt"] = j["updatedAt"];
    } else {
      auto own = own_template(*db, org, ref, u);
      if (!own)
        return out->send_error(own.error());
      std::tie(j, builds) = std::move(*own);
    }
    auto page = json::array();
    bool started = token.empty(), more = false;
    for (auto& b : builds) {
      if (!started) {
        started = b["buildID"] == token;
        continue;
      }
      if (page.size() == n) {
        more = true;
        break;
      }
      page.push_back(b);
    }
    json body = {{"templateID", j["templateID"]}, {"aliases", j["aliases"]},
                 {"names", j["names"]},           {"public", j["public"]},
                 {"createdAt", j["createdAt"]},   {"updatedAt", j["updatedAt"]},
                 {"lastSpawnedAt", j["lastSpawnedAt"]}, {"spawnCount", j["spawnCount"]},
                 {"builds", page}};
    std::map<std::string, std::string> headers;
    if (more && !page.empty())
      headers["X-Next-Token"] = page.back()["buildID"].get<std::string>();
    out->send_json_with_headers(200, body, headers);
  });
}

// DELETE /templates/:id: the org's own template with its builds, logs and
// root filesystems → 204; 409 while it builds or sandboxes or snapshots use
// it. Catalogue templates are the operator's: 403. A snapshot of the org
// (Sandbox.deleteSnapshot) → 204 and its files freed; 409 while a live
// sandbox or another snapshot rests on it.
void delete_template(api_context& ctx, request& req) {
  auto ref = req.params.at("id");
  if (ctx.templates->find(ref))
    return req.out->send_error({403, "template " + ref + " belongs to the server's catalogue"});
  auto out = req.out;
  auto org = req.org;
  // E2B's Sandbox.deleteSnapshot(id): a snapshot is deleted like a template.
  auto snap = ctx.db->find_snapshot(org, ref);
  if (!snap)
    return req.out->send_error(snap.error());
  if (*snap) {
    auto reg = ctx.registry;
    ctx.sys.spawn([=](caf::event_based_actor* self) {
      self->request(reg, caf::infinite, atom::remove::value, org, ref)
        .then([=](bool) { out->send_empty(204); }, reply_error_to(out));
    });
    return;
  }
  if (!ctx.template_builder)
    return req.out->send_error({503, "this server builds no templates"});
  auto builder = ctx.template_builder;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(builder, caf::infinite, atom::remove::value, org, ref)
      .then([=](bool) { out->send_empty(204); }, reply_error_to(out));
  });
}

// PATCH /templates/:id and /v2/templates/:id {public} → E2B's
// TemplateUpdateResponse {names}. An org's templates stay its own: `public:
// true` (sharing with every org) is refused rather than ignored. Catalogue
// templates are the operator's (403).
void update_template(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  for (auto& [field, _] : body->items())
    if (field != "public")
      return req.out->send_error(bad_request("unknown field '" + field.substr(0, 64)
                                             + "': a template update takes {public}"));
  auto pub = bool_field(*body, "public", false);
  if (!pub)
    return req.out->send_error(pub.error());
  auto ref = req.params.at("id");
  if (ctx.templates->find(ref))
    return req.out->send_error(
      failure{403, "template " + ref + " is the operator's catalogue: it is public already"});
  auto t = ctx.db->find_user_template(req.org, ref);
  if (!t)
    return req.out->send_error(t.error());
  if (!*t)
    return req.out->send_error(not_found("template " + ref + " not found"));
  if (*pub)
    return req.out->send_error(bad_request(
      "public templates are not offered by this server: an org's templates are seen by that"
      " org only (build it in each org that needs it)"));
  req.out->send_json(200, {{"names", {(*t)->name}}});
}

// GET /templates/aliases/:alias → E2B's TemplateAliasResponse {templateID,
// public}: a catalogue name or alias, or a name (or id) of the org's own.
void template_alias(api_context& ctx, request& req) {
  auto alias = req.params.at("alias");
  if (auto s = ctx.templates->find(alias))
    return req.out->send_json(200, {{"templateID", s->name}, {"public", true}});
  auto t = ctx.db->find_user_template(req.org, alias);
  if (!t)
    return req.out->send_error(t.error());
  if (*t)
    return req.out->send_json(200, {{"templateID", (*t)->id}, {"public", false}});
  req.out->send_error(not_found("template alias " + alias + " not found"));
}

// GET /templates/:id/builds/:buildId/status?logsOffset&limit&level → E2B's
// TemplateBuildInfo: the status and the build's progress lines from
// `logsOffset` on (of those at `level` or above), `reason` when it failed.
void template_build_status(api_context& ctx, request& req) {
  auto offset = int_param(req.query_param("logsOffset"), "logsOffset", 0, 0, int64_t{1} << 40);
  if (!offset)
    return req.out->send_error(offset.error());
  auto limit = int_param(req.query_param("limit"), "limit", 100, 1, 1000);
  if (!limit)
    return req.out->send_error(limit.error());
  auto level = req.query_param("level").value_or("");
  if (!level.empty() && level != "debug" && level != "info" && level != "warn" && level != "error")
    return req.out->send_error(bad_request("level must be debug, info, warn or error"));
  auto ref = req.params.at("id");
  auto build_id = req.params.at("buildId");
  if (auto s = ctx.templates->find(ref)) {
    if (build_id != s->hash)
      return req.out->send_error(not_found("build not found"));
    return req.out->send_json(200, {{"templateID", s->name},
                                    {"buildID", s->hash},
                                    {"status", catalog_build_status(ctx, *s)},
                                    {"logEntries", json::array()},
                                    {"logs", json::array()}});
  }
  auto t = ctx.db->find_user_template(req.org, ref);
  if (!t || !*t)
    return req.out->send_error(t ? not_found("template not found") : t.error());
  auto b = ctx.db->find_template_build((*t)->id, build_id);
  if (!b || !*b)
    return req.out->send_error(b ? not_found("build not found") : b.error());
  std::function<bool(const build_log_entry&)> keep;
  if (!level.empty()) {
    auto min = level_rank(level);
    keep = [min](const build_log_entry& e) { return level_rank(e.level) >= min; };
  }
  auto& build = **b;
  auto entries = log_entries(*ctx.db, build.id, static_cast<size_t>(*offset),
                             static_cast<size_t>(*limit), keep);
  if (!entries)
    return req.out->send_error(entries.error());
  json body = {{"templateID", (*t)->id},
               {"buildID", build.id},
               {"status", to_string(build.status)},
               {"logEntries", *entries},
               {"logs", json::array()}};
  if (build.status == build_status::error) {
    auto errors = log_entries(*ctx.db, build.id, 0, 20,
                              [](const build_log_entry& e) { return e.level == "error"; });
    if (!errors)
      return req.out->send_error(errors.error());
    body["reason"] = {{"message", build.reason},
                      {"step", build.failed_step.empty() ? "base" : build.failed_step},
                      {"logEntries", *errors}};
  }
  req.out->send_json(200, body);
}

} // namespace sandboxd::http
