#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/clock.hpp"
#include "core/crypto.hpp"
#include "http/connect_protocol.hpp"
#include "http/envd_call.hpp"
#include "http/server.hpp"
#include "runtime/base64.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

constexpr size_t max_unary_body = 16 * 1024 * 1024;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

// Per-request state across MHD's calls of the access handler.
struct request_state {
  envd_call call;
  std::unique_ptr<upload_sink> upload;
  std::optional<envd_reply> early; // an answer decided before the body
  bool too_large = false;
};

MHD_Result collect(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* m = static_cast<std::map<std::string, std::string>*>(cls);
  (*m)[lower(key)] = value ? value : "";
  return MHD_YES;
}

MHD_Result collect_query(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* m = static_cast<std::map<std::string, std::string>*>(cls);
  (*m)[key] = value ? value : "";
  return MHD_YES;
}

ssize_t stream_reader(void* cls, uint64_t, char* buf, size_t max) {
  auto n = static_cast<body_source*>(cls)->read(buf, max);
  if (n == 0)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (n < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  return n;
}

void stream_free(void* cls) {
  delete static_cast<body_source*>(cls);
}

MHD_Result send_reply(MHD_Connection* conn, envd_reply r) {
  MHD_Response* resp;
  bool has_body = r.stream || !r.body.empty();
  if (r.stream) {
    auto* src = r.stream.release();
    resp = MHD_create_response_from_callback(r.stream_size ? *r.stream_size : MHD_SIZE_UNKNOWN,
                                             256 * 1024, stream_reader, src, stream_free);
  } else {
    resp = MHD_create_response_from_buffer(r.body.size(), r.body.data(),
                                           MHD_RESPMEM_MUST_COPY);
  }
  if (!resp)
    return MHD_NO;
  if (!r.content_type.empty() && has_body)
    MHD_add_response_header(resp, "Content-Type", r.content_type.c_str());
  for (auto& [k, v] : r.headers)
    MHD_add_response_header(resp, k.c_str(), v.c_str());
  auto ret = MHD_queue_response(conn, static_cast<unsigned>(r.status), resp);
  MHD_destroy_response(resp);
  return ret;
}

// "49983-<id>.<domain>" → id
std::string id_from_host(const std::string& host) {
  auto dash = host.find('-');
  auto dot = host.find('.');
  if (dash == std::string::npos || dot == std::string::npos || dash > dot)
    return {};
  return host.substr(dash + 1, dot - dash - 1);
}

// "Basic base64(user:)" → user
std::string user_from_auth(const std::string& auth) {
  if (auth.rfind("Basic ", 0) != 0)
    return {};
  auto decoded = base64::decode(auth.substr(6));
  if (!decoded)
    return {};
  return decoded->substr(0, decoded->find(':'));
}

bool is_connect_rpc(const std::string& path) {
  return path.rfind("/process.Process/", 0) == 0
         || path.rfind("/filesystem.Filesystem/", 0) == 0;
}

// Resolves and authorizes the sandbox of a request. /health needs no token;
// /files accepts a signed URL instead of one.
std::optional<envd_reply> authorize(envd_call& call) {
  bool rpc = is_connect_rpc(call.path);
  bool stream = is_stream_rpc(call.path);
  auto fail = [&](const failure& f) {
    if (stream)
      return envd_reply::stream_error(f);
    return rpc ? envd_reply::connect_error(f) : envd_reply::rest_error(f);
  };
  call.sandbox_id = call.header("e2b-sandbox-id");
  if (call.sandbox_id.empty())
    call.sandbox_id = id_from_host(call.header("host"));
  call.user = user_from_auth(call.header("authorization"));
  if (call.user.empty())
    call.user = "user";
  // A signed /files URL may come from anyone holding it, without headers:
  // the sandbox is the one whose token makes the signature valid.
  if (call.sandbox_id.empty() && call.path == "/files" && call.param("signature")) {
    auto op = call.method == "GET" ? "read" : "write";
    for (auto& id : live_sandboxes(*call.ctx))
      if (check_signature(call, op, envd_access_token(call.ctx->db->secret(), id))) {
        call.sandbox_id = id;
        break;
      }
    if (call.sandbox_id.empty())
      return fail({401, "invalid signature"});
  }
  if (call.sandbox_id.empty()) {
    if (call.path == "/health")
      return envd_reply::empty(204);
    return fail(bad_request("missing E2b-Sandbox-Id header"));
  }
  auto token = envd_access_token(call.ctx->db->secret(), call.sandbox_id);
  if (call.path != "/health") {
    auto given = call.header("x-access-token");
    bool ok = !given.empty() && secure_equals(given, token);
    if (!ok && call.path == "/files" && call.param("signature")) {
      auto st = check_signature(call, call.method == "GET" ? "read" : "write", token);
      if (!st)
        return fail(st.error());
      ok = true;
    }
    if (!ok)
      return fail({401, given.empty() ? "missing X-Access-Token" : "invalid access token"});
  }
  auto sock = resolve_agent(*call.ctx, call.sandbox_id);
  if (!sock) {
    // E2B's edge answers 502 for a sandbox that is gone or not running;
    // the SDKs read that as "not running".
    auto f = sock.error();
    return fail({502, "sandbox " + call.sandbox_id + " is not running: " + f.message});
  }
  call.socket = *sock;
  return std::nullopt;
}

envd_reply dispatch(envd_call& call) {
  if (auto denied = authorize(call))
    return std::move(*denied);
  auto& p = call.path;
  if (p == "/health" && call.method == "GET")
    return envd_reply::empty(204);
  if (p == "/files" && call.method == "GET")
    return files_download(call);
  if (p == "/envs" && call.method == "GET")
    return process_rpc(call, "envs");
  if (p == "/metrics" && call.method == "GET") {
    auto s = sandbox_sample(*call.ctx, call.sandbox_id);
    if (!s)
      return envd_reply::rest_error(s.error());
    return envd_reply::json_body(200, {
      {"ts", s->timestamp_ms / 1000},
      {"cpu_count", s->cpu_count},
      {"cpu_used_pct", s->cpu_used_pct},
      {"mem_total", s->mem_total},
      {"mem_used", s->mem_used},
      {"mem_cache", s->mem_cache},
      {"mem_total_mib", s->mem_total / (1024 * 1024)},
      {"mem_used_mib", s->mem_used / (1024 * 1024)},
      {"disk_total", s->disk_total},
      {"disk_used", s->disk_used},
    });
  }
  if (call.method == "POST" && p.rfind("/process.Process/", 0) == 0)
    return process_rpc(call, p.substr(std::strlen("/process.Process/")));
  if (call.method == "POST" && p.rfind("/filesystem.Filesystem/", 0) == 0)
    return filesystem_rpc(call, p.substr(std::strlen("/filesystem.Filesystem/")));
  if (is_connect_rpc(p))
    return envd_reply::connect_error({501, "unsupported method " + call.method + " " + p});
  return envd_reply::rest_error(not_found("no route for " + call.method + " " + p));
}

MHD_Result on_request(void* cls, MHD_Connection* conn, const char* url, const char* method,
                      const char*, const char* upload_data, size_t* upload_size,
                      void** con_cls) {
  auto* ctx = static_cast<envd_context*>(cls);
  auto* st = static_cast<request_state*>(*con_cls);
  if (!st) {
    st = new request_state;
    *con_cls = st;
    auto& call = st->call;
    call.ctx = ctx;
    call.method = method;
    call.path = url;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect, &call.headers);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, &call.query);
    if (auto* info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD))
      call.client_fd = info->connect_fd;
    // Uploads stream into the sandbox as they arrive: authorize first.
    if (call.path == "/files" && call.method == "POST") {
      if (auto denied = authorize(call)) {
        st->early = std::move(*denied);
      } else {
        auto sink = files_upload(call, conn);
        if (!sink)
          st->early = envd_reply::rest_error(sink.error());
        else
          st->upload = std::move(*sink);
      }
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (st->upload && !st->early) {
      if (auto fed = st->upload->feed(upload_data, *upload_size); !fed) {
        st->early = envd_reply::rest_error(fed.error());
        st->upload.reset();
      }
    } else if (!st->early && !st->too_large) {
      if (st->call.body.size() + *upload_size > max_unary_body)
        st->too_large = true;
      else
        st->call.body.append(upload_data, *upload_size);
    }
    *upload_size = 0;
    return MHD_YES;
  }
  envd_reply reply;
  try {
    if (st->early)
      reply = std::move(*st->early);
    else if (st->upload)
      reply = st->upload->finish();
    else if (st->too_large)
      reply = is_connect_rpc(st->call.path)
                ? envd_reply::connect_error({413, "request body is larger than 16 MiB"})
                : envd_reply::rest_error({413, "request body is larger than 16 MiB"});
    else
      reply = dispatch(st->call);
  } catch (const std::exception& e) {
    spdlog::error("envd {} {}: {}", st->call.method, st->call.path, e.what());
    reply = envd_reply::rest_error(internal_error(e.what()));
  }
  return send_reply(conn, std::move(reply));
}

// libmicrohttpd's own messages: a client that hangs up mid-stream is
// routine here, so they go to the debug log.
void mhd_log(void*, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  spdlog::debug("envd: {}", buf);
}

void on_completed(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  delete static_cast<request_state*>(*con_cls);
  *con_cls = nullptr;
}

} // namespace

std::optional<std::chrono::milliseconds> envd_call::deadline() const {
  auto v = header("connect-timeout-ms");
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 12)
    return std::nullopt;
  auto ms = std::stoll(v);
  if (ms <= 0)
    return std::nullopt;
  return std::chrono::milliseconds(ms);
}

std::chrono::milliseconds envd_call::keepalive() const {
  auto v = header("keepalive-ping-interval");
  if (!v.empty() && v.find_first_not_of("0123456789") == std::string::npos && v.size() < 7) {
    auto s = std::stoi(v);
    if (s > 0)
      return std::chrono::seconds(s);
  }
  return std::chrono::seconds(50);
}

envd_reply envd_reply::json_body(int status, const json& j) {
  envd_reply r;
  r.status = status;
  r.body = j.dump();
  return r;
}

envd_reply envd_reply::empty(int status) {
  envd_reply r;
  r.status = status;
  r.content_type.clear();
  return r;
}

envd_reply envd_reply::rest_error(const failure& f) {
  return json_body(f.status, {{"code", f.status}, {"message", f.message}});
}

envd_reply envd_reply::stream_error(const failure& f) {
  envd_reply r;
  r.status = 200;
  r.content_type = "application/connect+json";
  r.body = connect::end_stream(f);
  return r;
}

bool is_stream_rpc(const std::string& path) {
  return path == "/process.Process/Start" || path == "/process.Process/Connect"
         || path == "/filesystem.Filesystem/WatchDir";
}

envd_reply envd_reply::connect_error(const failure& f) {
  auto body = connect::error_body(f);
  return json_body(connect::http_status_for(body["code"]), body);
}

namespace {

template <class T, class... Ts>
result<T> ask_sandbox(envd_context& ctx, const std::string& id, Ts... xs) {
  caf::scoped_actor self{ctx.sys};
  result<T> out = internal_error("no answer");
  self->request(ctx.registry, std::chrono::seconds(10), atom::lookup::value, id)
    .receive(
      [&](sandbox_actor& sb) {
        self->request(sb, std::chrono::seconds(60), xs...)
          .receive([&](T& x) { out = std::move(x); },
                   [&](caf::error& e) { out = from_error(e); });
      },
      [&](caf::error& e) { out = from_error(e); });
  return out;
}

} // namespace

std::vector<std::string> live_sandboxes(envd_context& ctx) {
  caf::scoped_actor self{ctx.sys};
  std::vector<std::string> ids;
  self->request(ctx.registry, std::chrono::seconds(10), atom::list::value)
    .receive([&](std::vector<std::string>& x) { ids = std::move(x); },
             [&](caf::error&) {});
  return ids;
}

result<json> agent_call(const envd_call& call, const json& request) {
  auto r = ask_sandbox<std::string>(*call.ctx, call.sandbox_id, atom::agent::value,
                                    request.dump(), int64_t{30000});
  if (!r)
    return r.error();
  return json::parse(*r);
}

result<std::string> resolve_agent(envd_context& ctx, const std::string& id) {
  return ask_sandbox<std::string>(ctx, id, atom::endpoint::value);
}

result<container_sample> sandbox_sample(envd_context& ctx, const std::string& id) {
  return ask_sandbox<container_sample>(ctx, id, atom::metrics::value);
}

struct envd_server::impl {
  envd_context ctx;
  MHD_Daemon* daemon = nullptr;
};

result<std::unique_ptr<envd_server>> envd_server::start(envd_context ctx,
                                                        const std::string& listen) {
  auto hp = parse_listen(listen);
  if (!hp)
    return hp.error();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(hp->second);
  auto host = hp->first == "localhost" ? std::string{"127.0.0.1"} : hp->first;
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return bad_request("envd listen address must be an IPv4 address: " + listen);
  std::unique_ptr<envd_server> srv{new envd_server};
  srv->impl_ = std::make_unique<impl>(impl{std::move(ctx), nullptr});
  srv->impl_->daemon = MHD_start_daemon(
    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
    hp->second, nullptr, nullptr, on_request, &srv->impl_->ctx,
    MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),
    MHD_OPTION_NOTIFY_COMPLETED, on_completed, nullptr,
    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, nullptr,
    MHD_OPTION_CONNECTION_TIMEOUT, 600u,
    MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
    MHD_OPTION_END);
  if (!srv->impl_->daemon)
    return failure{500, "cannot listen on " + listen + " (envd)"};
  return srv;
}

envd_server::~envd_server() {
  if (impl_ && impl_->daemon)
    MHD_stop_daemon(impl_->daemon);
}

} // namespace sandboxd::http
