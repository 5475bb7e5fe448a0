#include <arpa/inet.h>
#include <microhttpd.h>
#include <nlohmann/json.hpp>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "actors/agent_frame_json.hpp"
#include "core/ascii.hpp"
#include "core/clock.hpp"
#include "core/crypto.hpp"
#include "http/connect_protocol.hpp"
#include "http/envd_call.hpp"
#include "http/envd_ports.hpp"
#include "http/server.hpp"
#include "runtime/base64.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

using connect::max_message_bytes;

// Limits of the listener: thread per connection, so every open connection is
// a thread, capped in all and per client address (connection_limits, well
// above what an SDK client opens: a few per sandbox, one per open stream).
// Connections beyond them are closed on accept.
// Our handlers need little stack (the largest frame is gunzip's 64 KiB
// buffer); 1 MiB instead of glibc's 8 MiB keeps 4096 threads cheap.
constexpr size_t thread_stack = 1u << 20;
// No byte in either direction for this long closes a connection that is
// reading a request (head or body) or idle between requests. Lifted while
// we work on an authorized request: our content readers block up to 60 s
// between stream frames (keepalives come every Keepalive-Ping-Interval,
// 50 s by default, client-chosen), and MHD counts that wait as idleness.
constexpr unsigned idle_timeout_s = 30;
// A request head must be complete this long after the connection opened or
// the previous response ended, however slowly its bytes trickle in (the
// idle timeout alone never cuts a client sending a byte a second). Real
// clients send a head in one packet; SDK keep-alive pools drop idle sockets
// after 4-5 s, so they never race this.
constexpr auto head_deadline = std::chrono::seconds(15);

// Per-request state across MHD's calls of the access handler.
struct request_state {
  std::string raw_uri; // path and query exactly as sent (the port proxy passes it on)
  bool started = false; // the head has been handled
  bool upgraded = false; // answered 101: the connection is a relay now
  envd_call call;
  std::unique_ptr<upload_sink> upload;
  std::optional<envd_reply> early; // an answer decided before the body ends
  bool too_large = false;
  bool refused = false;  // `early` was decided from the head: drain_limit applies
  uint64_t dropped = 0;
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

// One open connection, as the head watch sees it.
struct watched_connection {
  int fd = -1;
  std::atomic<int64_t> waiting_since{0}; // ms; 0 while a request is being served
  bool cut = false;
};

// Cuts connections whose request head is not complete within head_deadline
// (slowloris). A connection is shut down, not closed: MHD's thread then reads
// EOF and closes it itself. MHD reports a connection closed before it closes
// the socket, and both happen under `mutex_`, so a shut-down fd is never one
// reused by a newer connection.
class head_watch {
public:
  head_watch() : thread_([this] { run(); }) {}
  ~head_watch() {
    {
      std::lock_guard<std::mutex> lock{mutex_};
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  watched_connection* opened(int fd) {
    auto* c = new watched_connection;
    c->fd = fd;
    c->waiting_since = now_ms();
    std::lock_guard<std::mutex> lock{mutex_};
    open_.insert(c);
    return c;
  }

  void closed(watched_connection* c) {
    std::lock_guard<std::mutex> lock{mutex_};
    open_.erase(c);
    delete c;
  }

private:
  void run() {
    std::unique_lock<std::mutex> lock{mutex_};
    while (!stop_) {
      wake_.wait_for(lock, std::chrono::milliseconds(500));
      auto limit = now_ms() - std::chrono::milliseconds(head_deadline).count();
      for (auto* c : open_) {
        auto since = c->waiting_since.load();
        if (since != 0 && since < limit && !c->cut) {
          ::shutdown(c->fd, SHUT_RDWR);
          c->cut = true;
        }
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::unordered_set<watched_connection*> open_;
  bool stop_ = false;
  std::thread thread_;
};

watched_connection* watched(MHD_Connection* conn) {
  auto* info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info ? static_cast<watched_connection*>(info->socket_context) : nullptr;
}

// Lifts the idle timeout while we work on an authorized request (see
// idle_timeout_s); on_completed puts it back for the next request.
void working_on(MHD_Connection* conn) {
  MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
}

MHD_Result collect(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* m = static_cast<std::map<std::string, std::string>*>(cls);
  (*m)[ascii_lower(key)] = value ? value : "";
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

// The client's socket after a 101, handed to the reply's relay.
void on_upgrade(void* cls, MHD_Connection* conn, void*, const char* extra_in, size_t extra_size,
                MHD_socket sock, MHD_UpgradeResponseHandle* urh) {
  std::shared_ptr<std::function<void(int, const std::string&)>> relay{
    static_cast<std::function<void(int, const std::string&)>*>(cls)};
  auto run = [relay, sock, urh, extra = std::string(extra_in ? extra_in : "", extra_size)] {
    (*relay)(sock, extra);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
  };
  // Over TLS the socket is one end of a pair whose other end this
  // connection's thread serves (decrypting, encrypting) once this returns:
  // the relay takes a thread of its own, one per upgraded connection, so as
  // bounded as the connections are.
  const MHD_ConnectionInfo* tls = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (tls && tls->tls_session) {
    try {
      std::thread(run).detach();
      return;
    } catch (const std::system_error& e) {
      // No thread to be had: the connection ends at once (the relay, on a
      // socket shut down, only closes the sandbox's side).
      spdlog::warn("envd: no thread for an upgraded connection: {}", e.what());
      ::shutdown(sock, SHUT_RDWR);
    }
  }
  run();
}

MHD_Result send_reply(MHD_Connection* conn, envd_reply r) {
  MHD_Response* resp;
  bool has_body = r.stream || !r.body.empty();
  if (r.upgraded) {
    auto* relay = new std::function<void(int, const std::string&)>(std::move(r.upgraded));
    resp = MHD_create_response_for_upgrade(on_upgrade, relay);
    if (!resp) {
      delete relay;
      return MHD_NO;
    }
    for (auto& [k, v] : r.headers)
      MHD_add_response_header(resp, k.c_str(), v.c_str());
    auto ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
    MHD_destroy_response(resp);
    return ret;
  }
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

// A failure in the dialect of the route: Connect stream, Connect unary, REST.
envd_reply error_reply(const envd_call& call, const failure& f) {
  if (is_stream_rpc(call.path))
    return envd_reply::stream_error(f);
  return is_connect_rpc(call.path) ? envd_reply::connect_error(f) : envd_reply::rest_error(f);
}

failure body_too_large() {
  return {413, "request body is larger than " + std::to_string(max_message_bytes >> 20) + " MiB"};
}

// Resolves and authorizes the sandbox of a request. /health needs no token;
// /files accepts a signed URL instead of one.
// Who runs sandbox `id`'s processes and where when a request names neither:
// asked of the sandbox once (a failed ask is not remembered).
process_defaults defaults_of(envd_context& ctx, const std::string& id) {
  if (auto known = ctx.defaults->find(id))
    return *known;
  process_defaults d;
  auto rec = sandbox_record_of(ctx, id);
  if (!rec)
    return d;
  if (auto u = rec->ext.find(event_ext::default_user); u != rec->ext.end())
    d.user = u->second;
  if (auto w = rec->ext.find(event_ext::default_workdir); w != rec->ext.end())
    d.workdir = w->second;
  ctx.defaults->remember(id, d);
  return d;
}

std::optional<envd_reply> authorize(envd_call& call) {
  auto fail = [&](const failure& f) { return error_reply(call, f); };
  bool terminal = is_terminal_path(call.path);
  call.sandbox_id = terminal ? call.param("sandboxID").value_or("") : call.header("e2b-sandbox-id");
  if (call.sandbox_id.empty() && !terminal)
    call.sandbox_id = id_from_host(call.header("host"));
  // A terminal runs as the sandbox's default user: its ticket grants no other.
  call.user = terminal ? std::string{} : user_from_auth(call.header("authorization"));
  bool default_user = call.user.empty();
  if (default_user)
    call.user = "user";
  // A signed /files URL grants exactly what was signed: its path, its
  // operation (GET reads, POST writes) and its user (`username`, or the
  // default). No header widens it: Authorization does not pick the user and
  // an access token does not stand in for a bad signature.
  bool signed_url = call.path == "/files" && call.param("signature");
  std::string operation;
  if (signed_url) {
    if (call.method != "GET" && call.method != "POST")
      return fail({405, "a signed URL is for GET (download) or POST (upload)"});
    operation = call.method == "GET" ? "read" : "write";
    call.user = "user";
  }
  // Anyone holding a signed URL may use it without headers: the sandbox is
  // the one whose token makes the signature valid.
  if (call.sandbox_id.empty() && signed_url) {
    // Its sandbox is the one whose token made it, expired or not (an expired
    // one then hears so below).
    for (auto& id : live_sandboxes(*call.ctx)) {
      auto verdict = judge_signature(call, operation, envd_access_token(call.ctx->db->secret(), id));
      if (verdict == signature_verdict::valid || verdict == signature_verdict::expired) {
        call.sandbox_id = id;
        break;
      }
    }
    if (call.sandbox_id.empty())
      return fail({401, "invalid signature"});
  }
  if (call.sandbox_id.empty()) {
    if (call.path == "/health")
      return envd_reply::empty(204);
    return fail(bad_request(terminal ? "missing sandboxID" : "missing E2b-Sandbox-Id header"));
  }
  auto token = envd_access_token(call.ctx->db->secret(), call.sandbox_id);
  if (terminal) {
    if (auto st = check_terminal_ticket(call); !st)
      return fail(st.error());
  } else if (signed_url) {
    if (auto st = check_signature(call, operation, token); !st)
      return fail(st.error());
  } else if (call.path != "/health") {
    auto given = call.header("x-access-token");
    if (given.empty() || !secure_equals(given, token))
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
  // Unnamed, the user is the sandbox's default (a signed URL's is its own).
  if (!signed_url) {
    auto d = defaults_of(*call.ctx, call.sandbox_id);
    if (default_user)
      call.user = d.user;
    call.workdir = d.workdir;
  }
  return std::nullopt;
}

// An authorized call (see authorize) to its handler.
envd_reply dispatch(envd_call& call) {
  auto& p = call.path;
  if (p == "/health" && call.method == "GET")
    return envd_reply::empty(204);
  if (p == "/files" && call.method == "GET")
    return files_download(call);
  if (is_terminal_path(p))
    return terminal_request(call);
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

// A refusal decided from the head. A small body is read and dropped first,
// so that a client still sending it reads the answer rather than a reset (the
// SDKs report a refused upload from its status); one announced larger is not
// read at all (MHD closes the connection after the answer), and a chunked one
// that grows past the limit is cut without an answer.
constexpr uint64_t drain_limit = 1u << 20;

// A signed /files URL is its own credential (no cookie, no header): any
// page holding one may read its answer, as E2B's envd lets browsers do. The
// console's uploads of large files rely on it.
void allow_any_origin_if_signed(const envd_call& call, envd_reply& r) {
  if (call.path == "/files" && call.param("signature"))
    r.headers.emplace_back("Access-Control-Allow-Origin", "*");
}

MHD_Result refuse_early(request_state* st, MHD_Connection* conn, envd_reply r) {
  auto length = st->call.header("content-length");
  bool digits = !length.empty() && length.find_first_not_of("0123456789") == std::string::npos;
  if (digits && (length.size() > 12 || std::stoull(length) > drain_limit)) {
    allow_any_origin_if_signed(st->call, r);
    return send_reply(conn, std::move(r));
  }
  st->early = std::move(r); // answered (and its origin allowed) once the body is read
  st->refused = true;
  return MHD_YES;
}

// A request for a sandbox port: who may reach it, then its upstream. Its
// body streams into the sandbox as it arrives, whatever its size.
MHD_Result start_port_request(request_state* st, MHD_Connection* conn, int port) {
  auto& call = st->call;
  call.sandbox_id = call.header("e2b-sandbox-id");
  if (call.sandbox_id.empty())
    call.sandbox_id = id_from_host(call.header("host"));
  auto refuse = [&](envd_reply r) { return refuse_early(st, conn, std::move(r)); };
  auto gone = [&](const std::string& why) {
    auto r = envd_reply::json_body(502, {{"message", "The sandbox was not found"},
                                         {"sandboxId", call.sandbox_id}, {"code", 502},
                                         {"detail", why}});
    r.content_type = "application/json; charset=utf-8";
    return refuse(std::move(r));
  };
  if (call.sandbox_id.empty())
    return refuse(envd_reply::rest_error(bad_request("missing E2b-Sandbox-Id header")));
  try {
    auto rec = sandbox_record_of(*call.ctx, call.sandbox_id);
    if (!rec)
      return gone(rec.error().message);
    // Ports are public unless the sandbox was created with allowPublicTraffic
    // false: then only its traffic token opens them (checked before a paused
    // sandbox is woken up for the request).
    auto net = network_of(*rec);
    if (!net.public_traffic) {
      auto given = call.header("e2b-traffic-access-token");
      auto want = traffic_access_token(call.ctx->db->secret(), call.sandbox_id);
      if (given.empty() || !secure_equals(given, want)) {
        auto r = envd_reply::json_body(
          403, {{"message", given.empty() ? "missing traffic access token" : "invalid traffic access token"},
                {"sandboxId", call.sandbox_id}, {"code", 403}});
        r.content_type = "application/json; charset=utf-8";
        return refuse(std::move(r));
      }
    }
    if (!net.mask_request_host.empty()) {
      auto host = net.mask_request_host;
      for (size_t at; (at = host.find("${PORT}")) != std::string::npos;)
        host.replace(at, 7, std::to_string(port));
      call.headers["host"] = host;
    }
    // A paused sandbox with autoResume wakes up here, as for envd calls.
    auto sock = resolve_agent(*call.ctx, call.sandbox_id);
    if (!sock)
      return gone(sock.error().message);
    call.socket = *sock;
  } catch (const std::exception& e) {
    return gone(e.what());
  }
  working_on(conn);
  envd_reply refused;
  auto sink = open_port_request(call, port, st->raw_uri, refused);
  if (!sink)
    return refuse(std::move(refused));
  st->upload = std::move(*sink);
  return MHD_YES;
}

// An upload of a template build's files: no sandbox, its URL's signature
// the only authority, so it is routed before any sandbox lookup. Refused
// from the head; the body streams to disk.
MHD_Result start_template_upload(request_state* st, MHD_Connection* conn) {
  try {
    auto sink = template_file_upload(st->call);
    if (!sink)
      return refuse_early(st, conn, envd_reply::rest_error(sink.error()));
    st->upload = std::move(*sink);
  } catch (const std::exception& e) {
    spdlog::error("envd {} {}: {}", st->call.method, st->call.path, e.what());
    return refuse_early(st, conn, envd_reply::rest_error(internal_error(e.what())));
  }
  return MHD_YES;
}

// A volume-content request: no sandbox, the volume's token the authority,
// so it is routed before any sandbox lookup and refused from the head; an
// upload's body streams into the volume.
MHD_Result start_volume_content(request_state* st, MHD_Connection* conn) {
  try {
    auto sink = volume_content_request(st->call);
    if (!sink)
      return refuse_early(st, conn, volume_content_error(sink.error()));
    st->upload = std::move(*sink);
  } catch (const std::exception& e) {
    spdlog::error("envd {} {}: {}", st->call.method, st->call.path, e.what());
    return refuse_early(st, conn, volume_content_error(internal_error(e.what())));
  }
  return MHD_YES;
}

MHD_Result on_request(void* cls, MHD_Connection* conn, const char* url, const char* method,
                      const char*, const char* upload_data, size_t* upload_size,
                      void** con_cls) {
  auto* ctx = static_cast<envd_context*>(cls);
  auto* st = static_cast<request_state*>(*con_cls);
  if (!st) { // made by on_uri, unless MHD skipped it
    st = new request_state;
    st->raw_uri = url;
    *con_cls = st;
  }
  if (!st->started) {
    st->started = true;
    auto& call = st->call;
    call.ctx = ctx;
    call.method = method;
    call.path = url;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect, &call.headers);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, &call.query);
    if (auto* info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD))
      call.client_fd = info->connect_fd;
    if (auto* w = watched(conn))
      w->waiting_since = 0; // the head is complete
    // Refused before a byte of the body is read: an answer queued now makes
    // MHD skip the body and close the connection after the reply.
    auto port = target_port(call);
    if (port)
      return start_port_request(st, conn, *port);
    if (is_template_files_path(call.path))
      return start_template_upload(st, conn);
    if (is_volume_content_path(call.path))
      return start_volume_content(st, conn);
    bool upload = call.path == "/files" && call.method == "POST";
    auto length = call.header("content-length");
    bool digits = !length.empty() && length.find_first_not_of("0123456789") == std::string::npos;
    if (!upload && digits && (length.size() > 12 || std::stoull(length) > max_message_bytes)) {
      return send_reply(conn, error_reply(call, body_too_large()));
    }
    try {
      if (auto denied = authorize(call))
        return refuse_early(st, conn, std::move(*denied));
    } catch (const std::exception& e) {
      spdlog::error("envd {} {}: {}", call.method, call.path, e.what());
      return refuse_early(st, conn, envd_reply::rest_error(internal_error(e.what())));
    }
    // Uploads stream into the sandbox as they arrive.
    if (upload) {
      working_on(conn);
      auto sink = files_upload(call, conn);
      if (!sink)
        return refuse_early(st, conn, envd_reply::rest_error(sink.error()));
      st->upload = std::move(*sink);
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (st->refused && (st->dropped += *upload_size) > drain_limit)
      return MHD_NO; // closes the connection
    if (st->upload && !st->early) {
      if (auto fed = st->upload->feed(upload_data, *upload_size); !fed) {
        st->early = envd_reply::rest_error(fed.error());
        st->upload.reset();
        // A body that grew past its limit (chunked: no Content-Length to
        // refuse it by) is read at most drain_limit further, then cut.
        if (fed.error().status == 413) {
          st->refused = true;
          st->dropped = 0;
        }
      }
    } else if (!st->early && !st->too_large) {
      if (st->call.body.size() + *upload_size > max_message_bytes)
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
    else if (st->too_large) // chunked: no Content-Length to refuse it by
      reply = error_reply(st->call, body_too_large());
    else {
      working_on(conn);
      reply = dispatch(st->call);
    }
  } catch (const nlohmann::json::exception& e) {
    // A field of the client's message has the wrong type or shape ("stdin":
    // "yes", "depth": "x"): the client's mistake, never a 500.
    reply = error_reply(st->call, bad_request(std::string{"invalid message: "} + e.what()));
  } catch (const std::exception& e) {
    spdlog::error("envd {} {}: {}", st->call.method, st->call.path, e.what());
    reply = envd_reply::rest_error(internal_error(e.what()));
  }
  st->upgraded = static_cast<bool>(reply.upgraded);
  allow_any_origin_if_signed(st->call, reply);
  return send_reply(conn, std::move(reply));
}

// libmicrohttpd's own messages: a client that hangs up mid-stream is
// routine here, so they go to the debug log.
void mhd_log(void*, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  spdlog::debug("envd: {}", buf);
}

void* on_uri(void*, const char* uri, MHD_Connection*) {
  auto* st = new request_state;
  st->raw_uri = uri ? uri : "/";
  return st;
}

void on_completed(void*, MHD_Connection* conn, void** con_cls, MHD_RequestTerminationCode) {
  auto* st = static_cast<request_state*>(*con_cls);
  bool relaying = st && st->upgraded;
  delete st;
  *con_cls = nullptr;
  if (relaying)
    return; // no next request: the socket is the relay's
  // Kept alive: the next request's head is due within head_deadline.
  MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, idle_timeout_s);
  if (auto* w = watched(conn))
    w->waiting_since = now_ms();
}

void on_connection(void* cls, MHD_Connection* conn, void** socket_context,
                   MHD_ConnectionNotificationCode what) {
  auto* watch = static_cast<head_watch*>(cls);
  if (what == MHD_CONNECTION_NOTIFY_STARTED) {
    auto* info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = info ? watch->opened(info->connect_fd) : nullptr;
  } else if (*socket_context) {
    watch->closed(static_cast<watched_connection*>(*socket_context));
    *socket_context = nullptr;
  }
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
  auto r = ask_sandbox<agent_frame>(*call.ctx, call.sandbox_id, atom::agent::value,
                                    to_frame(request), int64_t{30000});
  if (!r)
    return r.error();
  return parse_frame(*r);
}

result<sandbox_record> sandbox_record_of(envd_context& ctx, const std::string& id) {
  return ask_sandbox<sandbox_record>(ctx, id, atom::get::value);
}

result<std::string> resolve_agent(envd_context& ctx, const std::string& id) {
  return ask_sandbox<std::string>(ctx, id, atom::endpoint::value);
}

result<container_sample> sandbox_sample(envd_context& ctx, const std::string& id) {
  return ask_sandbox<container_sample>(ctx, id, atom::metrics::value);
}

struct envd_server::impl {
  envd_context ctx;
  head_watch watch;
  MHD_Daemon* daemon = nullptr;
  std::optional<tls_pem> tls; // libmicrohttpd keeps pointers to it
  explicit impl(envd_context c) : ctx(std::move(c)) {}
};

result<std::unique_ptr<envd_server>> envd_server::start(envd_context ctx, connection_limits limits,
                                                        const std::string& listen,
                                                        std::optional<tls_pem> tls) {
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
  srv->impl_ = std::make_unique<impl>(std::move(ctx));
  srv->impl_->tls = std::move(tls);
  unsigned tls_flag = 0;
  const char* cert = "";
  const char* key = "";
  if (srv->impl_->tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
      return failure{500, "this libmicrohttpd has no TLS: envd cannot serve HTTPS"};
    tls_flag = MHD_USE_TLS;
    cert = srv->impl_->tls->cert.c_str();
    key = srv->impl_->tls->key.c_str();
  }
  // poll(), not select(): select cannot watch a descriptor past FD_SETSIZE
  // (1024), so a thousand idle sockets would lock every later client out.
  srv->impl_->daemon = MHD_start_daemon(
    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
      | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE | tls_flag,
    hp->second, nullptr, nullptr, on_request, &srv->impl_->ctx,
    MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),
    MHD_OPTION_NOTIFY_COMPLETED, on_completed, nullptr,
    MHD_OPTION_URI_LOG_CALLBACK, on_uri, nullptr,
    MHD_OPTION_NOTIFY_CONNECTION, on_connection, &srv->impl_->watch,
    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, nullptr,
    MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s,
    MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(limits.total),
    MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned>(limits.per_client),
    MHD_OPTION_THREAD_STACK_SIZE, thread_stack,
    MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
    // Without TLS the options end here; with it, the certificate and key.
    tls_flag ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
    MHD_OPTION_HTTPS_MEM_KEY, key,
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
