// What route handlers reach: the actor system, the registry, the store.
#pragma once

#include <memory>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"
#include "http/e2b_json.hpp"
#include "storage/store.hpp"
#include "http/request.hpp"

namespace sandboxd {
class store;
class template_catalog;
class catalogue_builds;
class agent_catalog;
} // namespace sandboxd

namespace sandboxd::http {

struct api_context {
  caf::actor_system& sys;
  registry_actor registry;
  std::shared_ptr<store> db;
  webhook_dispatcher_actor webhooks;
  bool allow_private_webhooks = false;
  std::string envd_endpoint; // "http://HOST:PORT" (https with TLS) of the envd listener
  int envd_port = 0;
  std::shared_ptr<const template_catalog> templates;
  std::shared_ptr<const agent_catalog> agents;
  template_builder_actor template_builder; // the orgs' own templates
  std::string domain; // serve --domain: sandboxes' ports are <port>-<id>.<domain>
  std::string data_dir; // the server's data dir (uploaded template build files)
  // The catalogue templates this server builds as it runs (null: none).
  std::shared_ptr<const catalogue_builds> background_builds = nullptr;
  // The log's writer: long polls wait on it (GET /events/sandboxes?wait=S).
  event_log_actor event_log{};
  bool console = true; // serve --console: the web console on /
};

/// "http(s)://HOST:ENVD_PORT": the envd listener as reached by a client that
/// reached the API at `host_header` (routes.cpp).
std::string envd_base(const api_context& ctx, const std::string& host_header);
/// The same as "ws(s)://HOST:ENVD_PORT", for WebSockets (the terminal).
std::string envd_ws_base(const api_context& ctx, const std::string& host_header);

/// The keys of sandbox_json for this server.
inline sandbox_json_keys json_keys(const api_context& ctx) {
  return {ctx.db->secret(), ctx.domain};
}

/// Replies with the error carried by a failed request.
inline auto reply_error_to(std::shared_ptr<responder> out) {
  return [out](caf::error& e) { out->send_error(from_error(e)); };
}

/// Hands a template request (`template_request` or `code_template_request`)
/// to the template builder and answers 202 with E2B's
/// TemplateRequestResponseV3 for the stored template carrying `tags`.
template <class Request>
void request_template(api_context& ctx, const request& req, Request r,
                      std::vector<std::string> tags) {
  if (!ctx.template_builder)
    return req.out->send_error({503, "this server builds no templates"});
  auto out = req.out;
  auto builder = ctx.template_builder;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(builder, caf::infinite, atom::create::value, r)
      .then(
        [=](user_template& t) {
          out->send_json(202, {{"templateID", t.id},
                               {"buildID", t.latest_build},
                               {"names", {t.name}},
                               {"aliases", {t.name}},
                               {"public", false},
                               {"tags", tags}});
        },
        reply_error_to(out));
  });
}

/// Looks up the caller's sandbox `:id` and hands its actor to `f(self, sb)`
/// inside a one-shot actor; 404 when it is not the caller's.
template <class F>
void with_sandbox(api_context& ctx, const request& req, F f) {
  auto out = req.out;
  auto org = req.org;
  auto id = req.params.at("id");
  auto reg = ctx.registry;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::lookup::value, org, id)
      .then([=](sandbox_actor& sb) { f(self, sb); }, reply_error_to(out));
  });
}

/// Hands the running and paused sandboxes of the caller's org (newest first) to
/// `f(records)`; failures go to `on_error` (default: the failure as is).
template <class F, class E>
void with_org_records(api_context& ctx, const request& req, F f, E on_error) {
  auto org = req.org;
  auto reg = ctx.registry;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::list::value, org)
      .then([=](std::vector<sandbox_record>& recs) { f(recs); }, on_error);
  });
}

template <class F>
void with_org_records(api_context& ctx, const request& req, F f) {
  with_org_records(ctx, req, std::move(f), reply_error_to(req.out));
}

/// Hands the record of the caller's sandbox `:id` to `f(record)`, also
/// after the sandbox stopped; 404 when it is not the caller's.
template <class F>
void with_record(api_context& ctx, const request& req, F f) {
  auto out = req.out;
  auto org = req.org;
  auto id = req.params.at("id");
  auto reg = ctx.registry;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::get::value, org, id)
      .then([=](sandbox_record& r) { f(r); }, reply_error_to(out));
  });
}

} // namespace sandboxd::http
