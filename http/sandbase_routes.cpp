// The SandBase additions: run a process to completion, small-file access,
// health, metrics and environment. All of it goes through the sandbox actor
// to the in-sandbox agent; paths are resolved by the agent inside the
// sandbox, so `..` and symlinks never reach the host.
#include "actors/agent_frame_json.hpp"
#include "core/clock.hpp"
#include "core/crypto.hpp"
#include "core/ids.hpp"
#include "core/url_encode.hpp"
#include "core/result.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/e2b_json.hpp"
#include "http/envd_call.hpp"
#include "http/routes.hpp"
#include "runtime/base64.hpp"

namespace sandboxd::http {

namespace {

constexpr int64_t max_rest_file = 1024 * 1024; // larger files go through envd

// "user" unless the caller names another account inside the sandbox.
result<std::string> user_of(const request& req, const json* body = nullptr) {
  std::string user = "user";
  if (auto q = req.query_param("username"))
    user = *q;
  if (body && body->contains("user")) {
    auto u = string_field(*body, "user");
    if (!u)
      return u.error();
    user = *u;
  }
  if (user.empty())
    return bad_request("username must not be empty");
  return user;
}

result<std::string> path_param(const request& req) {
  auto p = req.query_param("path");
  if (!p || p->empty())
    return bad_request("path is required");
  return *p;
}

// Sends `op` to the sandbox's agent and hands the terminal frame to `f`.
template <class F>
void agent_call(api_context& ctx, request& req, json op, F f,
                int64_t timeout_ms = 30000) {
  auto out = req.out;
  auto frame = to_frame(op);
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::agent::value, frame, timeout_ms)
      .then(
        [=](agent_frame& reply) {
          auto r = parse_frame(reply);
          if (!r)
            return out->send_error(r.error());
          f(out, *r);
        },
        reply_error_to(out));
  });
}

} // namespace

void run_process(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto cmd = nonempty_string_field(*body, "cmd");
  if (!cmd)
    return req.out->send_error(cmd.error());
  json args = json::array();
  if (auto a = body->find("args"); a != body->end() && !a->is_null()) {
    if (!a->is_array())
      return req.out->send_error(bad_request("args must be an array of strings"));
    for (auto& x : *a) {
      if (!x.is_string())
        return req.out->send_error(bad_request("args must be an array of strings"));
      args.push_back(x);
    }
  }
  auto env = env_field(*body, "envVars");
  if (!env)
    return req.out->send_error(env.error());
  auto cwd = string_field(*body, "cwd", std::string{});
  if (!cwd)
    return req.out->send_error(cwd.error());
  auto timeout = int_field(*body, "timeout", 60, 1, 3600);
  if (!timeout)
    return req.out->send_error(timeout.error());
  auto user = user_of(req, &*body);
  if (!user)
    return req.out->send_error(user.error());
  json op = {{"op", "exec"},  {"cmd", *cmd},  {"args", args},
             {"env", *env},   {"user", *user}, {"timeout_ms", *timeout * 1000},
             {"stdin", false}};
  if (!cwd->empty())
    op["cwd"] = *cwd;
  auto out = req.out;
  auto frame = to_frame(op);
  auto budget_ms = *timeout * 1000 + 10000;
  auto secs = *timeout;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::exec::value, frame, budget_ms)
      .then(
        [=](exec_outcome& r) {
          if (r.timed_out)
            return out->send_error(bad_gateway(
              "process timed out after " + std::to_string(secs)
              + " s and was killed"));
          // Each stream keeps its first MiB (agent::kRunOutputLimit); the
          // process ran to its end either way.
          out->send_json(200, {{"processID", std::to_string(r.pid)},
                               {"stdout", r.stdout_text},
                               {"stderr", r.stderr_text},
                               {"stdoutTruncated", r.stdout_truncated},
                               {"stderrTruncated", r.stderr_truncated},
                               {"exitCode", r.exit_code}});
        },
        reply_error_to(out));
  });
}

void list_files(api_context& ctx, request& req) {
  auto path = path_param(req);
  if (!path)
    return req.out->send_error(path.error());
  auto user = user_of(req);
  if (!user)
    return req.out->send_error(user.error());
  auto p = *path;
  agent_call(ctx, req, {{"op", "list"}, {"path", p}, {"depth", 1}, {"user", *user}},
             [p](auto out, const json& r) {
               out->send_json(200, {{"path", p}, {"entries", r.at("entries")}});
             });
}

void read_file(api_context& ctx, request& req) {
  auto path = path_param(req);
  if (!path)
    return req.out->send_error(path.error());
  auto user = user_of(req);
  if (!user)
    return req.out->send_error(user.error());
  auto p = *path;
  agent_call(ctx, req,
             {{"op", "read"}, {"path", p}, {"user", *user}, {"max_bytes", max_rest_file}},
             [p](auto out, const json& r) {
               out->send_json(200, {{"path", p},
                                    {"size", r.value("size", 0)},
                                    {"encoding", "base64"},
                                    {"content", r.value("data", "")}});
             });
}

void write_file(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto path = nonempty_string_field(*body, "path");
  if (!path)
    return req.out->send_error(path.error());
  auto content = string_field(*body, "content");
  if (!content)
    return req.out->send_error(content.error());
  auto bytes = base64::decode(*content);
  if (!bytes)
    return req.out->send_error(bad_request("content must be base64"));
  if (static_cast<int64_t>(bytes->size()) > max_rest_file)
    return req.out->send_error(
      bad_request("content is larger than 1 MiB; upload through envd's /files"));
  auto user = user_of(req, &*body);
  if (!user)
    return req.out->send_error(user.error());
  agent_call(ctx, req,
             {{"op", "write"}, {"path", *path}, {"user", *user}, {"data", *content}},
             [](auto out, const json& r) { out->send_json(200, r.at("entry")); });
}

void remove_file(api_context& ctx, request& req) {
  auto path = path_param(req);
  if (!path)
    return req.out->send_error(path.error());
  auto user = user_of(req);
  if (!user)
    return req.out->send_error(user.error());
  agent_call(ctx, req, {{"op", "remove"}, {"path", *path}, {"user", *user}},
             [](auto out, const json&) { out->send_empty(204); });
}

void sandbox_health(api_context& ctx, request& req) {
  agent_call(ctx, req, {{"op", "ping"}},
             [](auto out, const json&) { out->send_empty(204); }, 5000);
}

void sandbox_envs(api_context& ctx, request& req) {
  agent_call(ctx, req, {{"op", "env"}},
             [](auto out, const json& r) { out->send_json(200, r.at("env")); });
}

} // namespace sandboxd::http

namespace sandboxd::http {

// POST /sandboxes/:id/terminal: a ticket for envd's GET /terminal (a shell
// on a PTY over a WebSocket, for the web console), valid a minute, for
// this sandbox only; 409 unless it is running.
void terminal_ticket_route(api_context& ctx, request& req) {
  auto out = req.out;
  auto secret = ctx.db->secret();
  auto envd_port = ctx.envd_port;
  auto tls = ctx.envd_endpoint.rfind("https://", 0) == 0;
  auto ws_base = envd_ws_base(ctx, req.header("host"));
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::get::value)
      .then(
        [=](sandbox_record& rec) {
          if (rec.state != sandbox_state::running)
            return out->send_error({409, "sandbox " + rec.id + " is " + to_string(rec.state)
                                           + ": a terminal needs it running (resume it first)"});
          auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
          auto expires = now + 60;
          auto ticket = terminal_ticket(secret, rec.id, expires, random_hex(16));
          out->send_json(201, {{"sandboxID", rec.id},
                               {"ticket", ticket},
                               {"expiresAt", to_rfc3339(expires * 1000)},
                               {"envdPort", envd_port},
                               {"tls", tls},
                               {"path", "/terminal?sandboxID=" + rec.id + "&ticket=" + ticket},
                               {"url", ws_base + "/terminal?sandboxID=" + rec.id + "&ticket=" + ticket}});
        },
        reply_error_to(out));
  });
}

} // namespace sandboxd::http

namespace sandboxd::http {

// POST /sandboxes/:id/files/links {path, operation: read|write, user?,
// expiresIn? s (1..3600, default 300)} → 201 {url, expiresAt}: a signed envd
// /files URL (E2B's scheme, the one the SDK's downloadUrl/uploadUrl make
// with the access token), for a client that holds an API key but cannot
// send headers to envd (a browser following a link, the console moving
// files of any size). Whoever holds the URL may use it until it expires.
void file_link_route(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto path = nonempty_string_field(*body, "path");
  if (!path)
    return req.out->send_error(path.error());
  auto op = string_field(*body, "operation");
  if (!op)
    return req.out->send_error(op.error());
  if (*op != "read" && *op != "write")
    return req.out->send_error(bad_request("operation must be read or write"));
  auto user = string_field(*body, "user", std::string{"user"});
  if (!user)
    return req.out->send_error(user.error());
  if (user->empty())
    return req.out->send_error(bad_request("user must not be empty"));
  auto ttl = int_field(*body, "expiresIn", 300, 1, 3600);
  if (!ttl)
    return req.out->send_error(ttl.error());
  auto out = req.out;
  auto secret = ctx.db->secret();
  auto base = envd_base(ctx, req.header("host"));
  with_sandbox(ctx, req, [=, path = *path, op = *op, user = *user, ttl = *ttl](
                           caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::get::value)
      .then(
        [=](sandbox_record& rec) {
          auto expires = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count() + ttl;
          auto exp = std::to_string(expires);
          auto sig = files_signature(path, op, user, envd_access_token(secret, rec.id), exp);
          out->send_json(201, {{"url", base + "/files?path=" + url_encode(path, "/") + "&username="
                                         + url_encode(user) + "&signature=" + url_encode(sig)
                                         + "&signature_expiration=" + exp},
                               {"expiresAt", to_rfc3339(expires * 1000)}});
        },
        reply_error_to(out));
  });
}

} // namespace sandboxd::http
