// Templates defined in code (E2B's build system v2, the SDK's Template.build):
// request a build (POST /v3/templates), learn where each COPY step's files
// go (GET /templates/:id/files/:hash: a signed URL on the envd listener,
// which streams uploads), then start the build with its steps (POST
// /v2/templates/:id/builds/:buildId); its status and logs come from the
// build status route. The builder actor runs the steps inside sandboxes.
#include <sys/stat.h>

#include "core/clock.hpp"
#include "core/code_template.hpp"
#include "core/template_files.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

constexpr int64_t upload_link_ttl_s = 3600;

} // namespace

// POST /v3/templates {name, tags?, cpuCount?, memoryMB?} → 202 E2B's
// TemplateRequestResponseV3; the build waits for its steps.
void request_template_build(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto r = parse_code_template_request(*body, req.org);
  if (!r)
    return req.out->send_error(r.error());
  request_template(ctx, req, *r, r->tags);
}

// GET /templates/:id/files/:hash → E2B's TemplateBuildFileUpload: present,
// or where to PUT the archive (valid for an hour, for this org only).
void template_files_link(api_context& ctx, request& req) {
  auto hash = req.params.at("hash");
  if (!valid_files_hash(hash))
    return req.out->send_error(bad_request("hash must be 64 hex digits (the SDK's files hash)"));
  auto t = ctx.db->find_user_template(req.org, req.params.at("id"));
  if (!t)
    return req.out->send_error(t.error());
  if (!*t)
    return req.out->send_error(not_found("template not found"));
  struct stat st {};
  auto path = template_file_path(ctx.data_dir, req.org, hash);
  if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
    return req.out->send_json(200, {{"present", true}});
  auto expires = now_ms() / 1000 + upload_link_ttl_s;
  req.out->send_json(200, {{"present", false},
                           {"url", template_upload_url(envd_base(ctx, req.header("host")),
                                                       ctx.db->secret(), req.org, (*t)->id,
                                                       hash, expires)}});
}

// POST /v2/templates/:id/builds/:buildId E2B's TemplateBuildStartV2 → 202;
// the build runs on: poll its status.
void start_template_build(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto steps = parse_template_steps(*body);
  if (!steps)
    return req.out->send_error(steps.error());
  if (!ctx.template_builder)
    return req.out->send_error({503, "this server builds no templates"});
  auto t = ctx.db->find_user_template(req.org, req.params.at("id"));
  if (!t)
    return req.out->send_error(t.error());
  if (!*t)
    return req.out->send_error(not_found("template not found"));
  auto out = req.out;
  auto builder = ctx.template_builder;
  auto org = req.org;
  auto tid = (*t)->id;
  auto build_id = req.params.at("buildId");
  auto s = *steps;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(builder, caf::infinite, atom::start::value, org, tid, build_id, s)
      .then([=](bool) { out->send_json(202, json::object()); }, reply_error_to(out));
  });
}

} // namespace sandboxd::http
