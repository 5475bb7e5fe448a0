#include "http/routes.hpp"

#include "http/console_files.hpp"
#include "http/openapi_spec.hpp"

#include "http/body.hpp"
#include "http/context.hpp"

namespace sandboxd::http {

// "http://HOST:ENVD_PORT" for a client that reached us at `host_header`
// (the envd listener is on the same host); the configured endpoint when the
// request named no host or one with characters no host name has (it also
// goes into the console's CSP header).
std::string envd_base(const api_context& ctx, const std::string& host_header) {
  if (host_header.empty()
      || host_header.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
           != std::string::npos)
    return ctx.envd_endpoint;
  auto host = host_header;
  if (host[0] == '[') { // [v6]:port
    auto close = host.find(']');
    if (close == std::string::npos)
      return ctx.envd_endpoint;
    host.resize(close + 1);
  } else if (auto colon = host.find(':'); colon != std::string::npos) {
    host.resize(colon);
  }
  auto scheme = ctx.envd_endpoint.substr(0, ctx.envd_endpoint.find("://"));
  return scheme + "://" + host + ":" + std::to_string(ctx.envd_port);
}

std::string envd_ws_base(const api_context& ctx, const std::string& host_header) {
  auto base = envd_base(ctx, host_header);
  auto sep = base.find("://");
  if (sep == std::string::npos)
    return "ws://" + base;
  return (base.compare(0, sep, "https") == 0 ? "wss" : "ws") + base.substr(sep);
}

// Handlers, by file: e2b_routes.cpp, sandbase_routes.cpp, metrics_routes.cpp,
// logs_routes.cpp, snapshot_routes.cpp, events_routes.cpp, webhook_routes.cpp,
// e2a_routes.cpp.
void create_sandbox(api_context&, request&);
void list_sandboxes(api_context&, request&);
void list_sandboxes_v2(api_context&, request&);
void get_sandbox(api_context&, request&);
void kill_sandbox(api_context&, request&);
void pause_sandbox(api_context&, request&);
void connect_sandbox(api_context&, request&);
void timeout_sandbox(api_context&, request&);
void refresh_sandbox(api_context&, request&);
void run_process(api_context&, request&);
void terminal_ticket_route(api_context&, request&);
void file_link_route(api_context&, request&);
void list_files(api_context&, request&);
void read_file(api_context&, request&);
void write_file(api_context&, request&);
void remove_file(api_context&, request&);
void sandbox_health(api_context&, request&);
void sandbox_envs(api_context&, request&);
void sandbox_metrics(api_context&, request&);
void sandboxes_metrics(api_context&, request&);
void prometheus_metrics(api_context&, request&);
void sandbox_logs(api_context&, request&);
void sandbox_logs_v2(api_context&, request&);
void create_snapshot(api_context&, request&);
void list_snapshots(api_context&, request&);
void fork_sandbox(api_context&, request&);
void update_network(api_context&, request&);
void org_events(api_context&, request&);
void sandbox_events(api_context&, request&);
void audit_head(api_context&, request&);
void audit_verify(api_context&, request&);
void create_webhook(api_context&, request&);
void list_webhooks(api_context&, request&);
void get_webhook(api_context&, request&);
void patch_webhook(api_context&, request&);
void delete_webhook(api_context&, request&);
void list_deliveries(api_context&, request&);
void redeliver(api_context&, request&);
void e2a_create(api_context&, request&);
void e2a_list(api_context&, request&);
void e2a_get(api_context&, request&);
void e2a_exec(api_context&, request&);
void e2a_delete(api_context&, request&);
void e2a_logs(api_context&, request&);
void e2a_cancel(api_context&, request&);
// template_routes.cpp
void list_templates(api_context&, request&);
void list_templates_v2(api_context&, request&);
void create_template(api_context&, request&);
void get_template(api_context&, request&);
void delete_template(api_context&, request&);
void update_template(api_context&, request&);
void template_alias(api_context&, request&);
void template_build_status(api_context&, request&);
// template_build_routes.cpp
void request_template_build(api_context&, request&);
void template_files_link(api_context&, request&);
void start_template_build(api_context&, request&);
// template_tag_routes.cpp
void assign_template_tags(api_context&, request&);
void remove_template_tags(api_context&, request&);
void list_template_tags(api_context&, request&);
// volume_routes.cpp
void create_volume(api_context&, request&);
void list_volumes(api_context&, request&);
void get_volume(api_context&, request&);
void delete_volume(api_context&, request&);
// secret_routes.cpp
void create_secret(api_context&, request&);
void list_secrets(api_context&, request&);
void get_secret(api_context&, request&);
void update_secret(api_context&, request&);
void delete_secret(api_context&, request&);

namespace {

void server_health(api_context&, request& req) {
  req.out->send_json(200, {{"status", "ok"}});
}

// The spec this server is tested against; nothing in it is secret.
void openapi_document(api_context&, request& req) {
  req.out->send_text(200, std::string{openapi_spec()}, "application/yaml");
}

// The web console (http/console_files.hpp): its files need no key (the page
// asks for one and sends it with every API call). Its scripts and styles are
// its own only: no inline script, nothing from elsewhere.
void console_page(api_context& ctx, request& req) {
  if (!ctx.console)
    return req.out->send_error(not_found("the console is off (serve --console false)"));
  auto& files = console_files();
  auto it = files.find(req.path);
  if (it == files.end())
    return req.out->send_error(not_found("no such console file: " + req.path));
  auto ends_with = [&](std::string_view suffix) {
    return req.path.size() >= suffix.size()
           && req.path.compare(req.path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::string type = ends_with(".js")    ? "text/javascript; charset=utf-8"
                     : ends_with(".css") ? "text/css; charset=utf-8"
                                         : "text/html; charset=utf-8";
  // The terminal's WebSocket and large files' signed URLs go to envd's
  // listener (another port); xterm.js styles its rows with a <style>
  // element of its own.
  auto ws = envd_ws_base(ctx, req.header("host")) + " " + envd_base(ctx, req.header("host"));
  req.out->send_text(200, std::string{it->second}, type,
                     {{"Content-Security-Policy",
                       "default-src 'self'; connect-src 'self' " + ws + "; style-src 'self' 'unsafe-inline'; "
                       "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"},
                      {"X-Content-Type-Options", "nosniff"},
                      {"Cache-Control", "no-cache"}});
}

} // namespace

const std::vector<route>& control_plane_routes() {
  static const std::vector<route> routes = {
    {"GET", "/health", server_health, false},
    {"GET", "/openapi.yaml", openapi_document, false},
    {"GET", "/", console_page, false},
    {"GET", "/console/:file", console_page, false},
    {"GET", "/metrics", prometheus_metrics, false},
    {"GET", "/sandboxes/metrics", sandboxes_metrics},
    {"POST", "/sandboxes", create_sandbox},
    {"POST", "/v2/sandboxes", create_sandbox},
    {"GET", "/sandboxes", list_sandboxes},
    {"GET", "/v2/sandboxes", list_sandboxes_v2},
    {"GET", "/sandboxes/:id", get_sandbox},
    {"DELETE", "/sandboxes/:id", kill_sandbox},
    {"POST", "/sandboxes/:id/pause", pause_sandbox},
    {"POST", "/sandboxes/:id/connect", connect_sandbox},
    {"POST", "/v2/sandboxes/:id/connect", connect_sandbox},
    {"POST", "/sandboxes/:id/resume", connect_sandbox},
    {"POST", "/sandboxes/:id/timeout", timeout_sandbox},
    {"POST", "/sandboxes/:id/refreshes", refresh_sandbox},
    {"POST", "/sandboxes/:id/processes", run_process},
    {"POST", "/sandboxes/:id/terminal", terminal_ticket_route},
    {"POST", "/sandboxes/:id/files/links", file_link_route},
    {"GET", "/sandboxes/:id/filesystem/list", list_files},
    {"GET", "/sandboxes/:id/filesystem", read_file},
    {"POST", "/sandboxes/:id/filesystem", write_file},
    {"DELETE", "/sandboxes/:id/filesystem", remove_file},
    {"GET", "/sandboxes/:id/health", sandbox_health},
    {"GET", "/sandboxes/:id/metrics", sandbox_metrics},
    {"GET", "/sandboxes/:id/envs", sandbox_envs},
    {"GET", "/sandboxes/:id/logs", sandbox_logs},
    {"GET", "/v2/sandboxes/:id/logs", sandbox_logs_v2},
    {"POST", "/sandboxes/:id/snapshots", create_snapshot},
    {"GET", "/snapshots", list_snapshots},
    {"POST", "/sandboxes/:id/fork", fork_sandbox},
    {"PUT", "/sandboxes/:id/network", update_network},
    {"GET", "/events/sandboxes", org_events},
    {"GET", "/events/sandboxes/:id", sandbox_events},
    {"GET", "/events/audit/head", audit_head},
    {"POST", "/events/audit/verify", audit_verify},
    {"POST", "/events/webhooks", create_webhook},
    {"GET", "/events/webhooks", list_webhooks},
    {"GET", "/events/webhooks/:id", get_webhook},
    {"PATCH", "/events/webhooks/:id", patch_webhook},
    {"DELETE", "/events/webhooks/:id", delete_webhook},
    {"GET", "/events/webhooks/:id/deliveries", list_deliveries},
    {"POST", "/events/webhooks/:id/deliveries/:eventId/redeliver", redeliver},
    {"POST", "/v1/sandboxes", e2a_create},
    {"GET", "/v1/sandboxes", e2a_list},
    {"GET", "/v1/sandboxes/:id", e2a_get},
    {"DELETE", "/v1/sandboxes/:id", e2a_delete},
    {"POST", "/v1/sandboxes/:id/exec", e2a_exec},
    {"GET", "/v1/sandboxes/:id/logs", e2a_logs},
    {"POST", "/v1/sandboxes/:id/cancel", e2a_cancel},
    {"GET", "/templates", list_templates},
    {"POST", "/templates", create_template},
    {"GET", "/v2/templates", list_templates_v2},
    {"GET", "/templates/aliases/:alias", template_alias},
    // Before /templates/:id: "tags" is not a template's id here.
    {"POST", "/templates/tags", assign_template_tags},
    {"DELETE", "/templates/tags", remove_template_tags},
    {"GET", "/templates/:id/tags", list_template_tags},
    {"GET", "/templates/:id", get_template},
    {"DELETE", "/templates/:id", delete_template},
    {"PATCH", "/templates/:id", update_template},
    {"PATCH", "/v2/templates/:id", update_template},
    {"GET", "/templates/:id/builds/:buildId/status", template_build_status},
    {"POST", "/v3/templates", request_template_build},
    {"GET", "/templates/:id/files/:hash", template_files_link},
    {"POST", "/v2/templates/:id/builds/:buildId", start_template_build},
    {"POST", "/volumes", create_volume},
    {"GET", "/volumes", list_volumes},
    {"GET", "/volumes/:id", get_volume},
    {"DELETE", "/volumes/:id", delete_volume},
    {"POST", "/secrets", create_secret},
    {"GET", "/secrets", list_secrets},
    {"GET", "/secrets/:id", get_secret},
    {"POST", "/secrets/:id", update_secret},
    {"DELETE", "/secrets/:id", delete_secret},
  };
  return routes;
}

bool match_route(const std::string& pattern, const std::string& path,
                 std::map<std::string, std::string>& params) {
  size_t pi = 0, si = 0;
  std::map<std::string, std::string> found;
  while (pi < pattern.size() && si < path.size()) {
    if (pattern[pi] == ':') {
      auto pend = pattern.find('/', pi);
      auto send = path.find('/', si);
      auto name = pattern.substr(pi + 1, pend == std::string::npos
                                           ? std::string::npos
                                           : pend - pi - 1);
      auto value = path.substr(si, send == std::string::npos ? std::string::npos
                                                             : send - si);
      if (value.empty())
        return false;
      // Clients encode path parameters (the SDKs' "name:default" as %3A).
      found[name] = url_decode(value, false);
      pi = pend == std::string::npos ? pattern.size() : pend;
      si = send == std::string::npos ? path.size() : send;
      continue;
    }
    if (pattern[pi] != path[si])
      return false;
    ++pi;
    ++si;
  }
  // A single trailing slash on the request is tolerated.
  if (si + 1 == path.size() && path[si] == '/')
    ++si;
  if (pi != pattern.size() || si != path.size())
    return false;
  params = std::move(found);
  return true;
}

} // namespace sandboxd::http
