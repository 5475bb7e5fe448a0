// Tags of an org's templates (E2B's Template.assignTags, removeTags,
// getTags): a tag names one ready build of a template (core/template_tags).
// Moving tags is a write, so it goes through the template builder actor;
// listing them reads the store.
#include "core/template_tags.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

// POST /templates/tags {target: "name:tag", tags} → 201 E2B's
// AssignedTemplateTags {buildID, tags}.
void assign_template_tags(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto asked = parse_tag_assignment(*body);
  if (!asked)
    return req.out->send_error(asked.error());
  if (!ctx.template_builder)
    return req.out->send_error({503, "this server builds no templates"});
  auto out = req.out;
  auto builder = ctx.template_builder;
  auto org = req.org;
  auto target = asked->target.name + ":" + asked->target.tag;
  auto tags = asked->tags;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(builder, caf::infinite, atom::tag::value, org, target, tags)
      .then([=](std::string& build_id) {
              out->send_json(201, {{"buildID", build_id}, {"tags", tags}});
            },
            reply_error_to(out));
  });
}

// DELETE /templates/tags {name, tags} → 204.
void remove_template_tags(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto asked = parse_tag_removal(*body);
  if (!asked)
    return req.out->send_error(asked.error());
  if (!ctx.template_builder)
    return req.out->send_error({503, "this server builds no templates"});
  auto out = req.out;
  auto builder = ctx.template_builder;
  auto org = req.org;
  auto name = asked->name;
  auto tags = asked->tags;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(builder, caf::infinite, atom::untag::value, org, name, tags)
      .then([=](bool) { out->send_empty(204); }, reply_error_to(out));
  });
}

// GET /templates/:id/tags (id or name) → 200 [E2B's TemplateTag].
void list_template_tags(api_context& ctx, request& req) {
  auto t = ctx.db->find_user_template(req.org, req.params.at("id"));
  if (!t)
    return req.out->send_error(t.error());
  if (!*t)
    return req.out->send_error(not_found("template not found"));
  auto builds = ctx.db->template_builds((*t)->id);
  if (!builds)
    return req.out->send_error(builds.error());
  req.out->send_json(200, tags_json(*builds));
}

} // namespace sandboxd::http
