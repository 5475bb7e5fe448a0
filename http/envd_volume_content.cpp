// E2B's volume-content API (spec/openapi-volumecontent.yml; the SDK's
// `Volume` instance methods), served on the envd listener, which the SDK
// reaches through E2B_VOLUME_API_URL:
//   GET|PATCH|DELETE /volumecontent/<id>/path?path=       stat, chown/chmod, remove
//   GET|POST         /volumecontent/<id>/dir?path=        list (depth), mkdir (force: parents)
//   GET|PUT          /volumecontent/<id>/file?path=       download, upload (force: overwrite)
// No sandbox: the volume's token (`Authorization: Bearer`, core/volume.hpp)
// is the authority, checked on the request head before a byte of the body
// is read (unknown volume 404, missing or wrong token 401). The files are
// reached on the host through the volume's mounted filesystem, never by a
// path a sandbox could redirect (runtime/volume_files.hpp). Errors are
// {"code": "<status>", "message"} (the spec's Error: code is a string).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <tuple>

#include "core/ascii.hpp"
#include "core/fd_closer.hpp"
#include "core/volume.hpp"
#include "http/envd_call.hpp"
#include "runtime/volume_files.hpp"
#include "runtime/volume_store.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

namespace vf = volume_files;

constexpr const char* route_prefix = "/volumecontent/";
// Bodies other than an upload's are a PATCH's small JSON object.
constexpr size_t max_small_body = 64 * 1024;

envd_reply error_reply(const failure& f) {
  return envd_reply::json_body(f.status, {{"code", std::to_string(f.status)}, {"message", f.message}});
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// A decimal query parameter of at most `max`; absent → nullopt.
result<std::optional<uint32_t>> number_param(const envd_call& call, const std::string& name,
                                             uint32_t max) {
  auto v = call.param(name);
  if (!v)
    return std::optional<uint32_t>{};
  if (!all_digits(*v) || v->size() > 10 || std::stoull(*v) > max)
    return bad_request(name + " must be a number from 0 to " + std::to_string(max));
  return std::optional<uint32_t>{static_cast<uint32_t>(std::stoull(*v))};
}

result<bool> bool_param(const envd_call& call, const std::string& name) {
  auto v = call.param(name);
  if (!v)
    return false;
  auto l = ascii_lower(*v);
  if (l == "true" || l == "1")
    return true;
  if (l == "false" || l == "0" || l.empty())
    return false;
  return bad_request(name + " must be true or false");
}

// uid, gid, mode from the query (an upload's or a mkdir's).
result<vf::attributes> query_attributes(const envd_call& call) {
  vf::attributes a;
  auto uid = number_param(call, "uid", vf::max_id);
  if (!uid)
    return uid.error();
  auto gid = number_param(call, "gid", vf::max_id);
  if (!gid)
    return gid.error();
  auto mode = number_param(call, "mode", vf::max_mode);
  if (!mode)
    return mode.error();
  a.uid = *uid;
  a.gid = *gid;
  a.mode = *mode;
  if (auto c = vf::check(a); !c)
    return c.error();
  return a;
}

// A PATCH body: {uid?, gid?, mode?}, each an unsigned integer or null.
result<vf::attributes> body_attributes(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return bad_request("the body must be a JSON object {uid, gid, mode}");
  vf::attributes a;
  for (auto [name, slot, max] : {std::tuple{"uid", &a.uid, vf::max_id},
                                 std::tuple{"gid", &a.gid, vf::max_id},
                                 std::tuple{"mode", &a.mode, vf::max_mode}}) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null())
      continue;
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > max)
      return bad_request(std::string{name} + " must be an integer from 0 to " + std::to_string(max));
    *slot = static_cast<uint32_t>(it->get<int64_t>());
  }
  if (auto c = vf::check(a); !c)
    return c.error();
  return a;
}

// A regular file's bytes, at most the size it had when opened: it may grow
// meanwhile (a sandbox writing it), and one that shrinks aborts the response
// (its Content-Length can no longer be met).
class file_source : public body_source {
public:
  file_source(fd_closer fd, uint64_t size) : fd_(std::move(fd)), left_(size) {}
  ssize_t read(char* buf, size_t max) override {
    if (left_ == 0)
      return 0;
    for (;;) {
      auto n = ::read(fd_.get(), buf, static_cast<size_t>(std::min<uint64_t>(max, left_)));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return -1;
      left_ -= static_cast<uint64_t>(n);
      return n;
    }
  }

private:
  fd_closer fd_;
  uint64_t left_;
};

// A small file is read whole before answering, so its Content-Length is
// what was read even when a sandbox shrinks it meanwhile; a larger one
// streams (file_source).
constexpr uint64_t small_file_bytes = 256 * 1024;

envd_reply read_small_file(int fd, uint64_t size, envd_reply r) {
  r.body.resize(static_cast<size_t>(size));
  size_t got = 0;
  while (got < r.body.size()) {
    auto n = ::read(fd, r.body.data() + got, r.body.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return error_reply(failure{500, std::string{"reading the file: "} + std::strerror(errno)});
    if (n == 0)
      break; // shrunk since it was opened
    got += static_cast<size_t>(n);
  }
  r.body.resize(got);
  return r;
}

// PUT /file: the body streams into the volume (volume_files::upload).
class upload_into_volume : public upload_sink {
public:
  explicit upload_into_volume(vf::upload u) : upload_(std::move(u)) {}
  // A failed write (the volume full) removes what was written; the rest of
  // the body is read and dropped, and the failure is the answer.
  status feed(const char* data, size_t size) override {
    if (failed_)
      return success();
    if (auto s = upload_.write(data, size); !s)
      failed_ = s.error();
    return success();
  }
  envd_reply finish() override {
    if (failed_)
      return error_reply(*failed_);
    auto e = upload_.commit();
    if (!e)
      return error_reply(e.error());
    return envd_reply::json_body(201, vf::to_json(*e));
  }

private:
  vf::upload upload_;
  std::optional<failure> failed_;
};

// Every other route: a small body kept, the operation run once it is in.
class small_request : public upload_sink {
public:
  small_request(fd_closer root, std::string what, std::string method, std::string path,
                const envd_call& call)
    : root_(std::move(root)), what_(std::move(what)), method_(std::move(method)),
      path_(std::move(path)), call_(call) {}

  status feed(const char* data, size_t size) override {
    if (body_.size() + size > max_small_body)
      return failure{413, "the request body is larger than "
                            + std::to_string(max_small_body >> 10) + " KiB"};
    body_.append(data, size);
    return success();
  }

  envd_reply finish() override {
    int root = root_.get();
    if (what_ == "path" && method_ == "GET")
      return answer(vf::stat(root, path_), 200);
    if (what_ == "path" && method_ == "PATCH") {
      auto a = body_attributes(body_);
      if (!a)
        return error_reply(a.error());
      return answer(vf::update(root, path_, *a), 200);
    }
    if (what_ == "path" && method_ == "DELETE") {
      auto s = vf::remove(root, path_);
      return s ? envd_reply::empty(204) : error_reply(s.error());
    }
    if (what_ == "dir" && method_ == "GET") {
      auto depth = number_param(call_, "depth", 1u << 20);
      if (!depth)
        return error_reply(depth.error());
      auto l = vf::list(root, path_, depth->value_or(1));
      if (!l)
        return error_reply(l.error());
      return envd_reply::json_body(200, vf::to_json(*l));
    }
    if (what_ == "dir" && method_ == "POST") {
      auto a = query_attributes(call_);
      if (!a)
        return error_reply(a.error());
      auto force = bool_param(call_, "force");
      if (!force)
        return error_reply(force.error());
      return answer(vf::make_dir(root, path_, *a, *force), 201);
    }
    // GET /file
    auto f = vf::open_file(root, path_);
    if (!f)
      return error_reply(f.error());
    envd_reply r;
    r.status = 200;
    r.content_type = "application/octet-stream";
    if (f->size <= small_file_bytes)
      return read_small_file(f->fd.get(), f->size, std::move(r));
    r.stream_size = f->size;
    r.stream = std::make_unique<file_source>(std::move(f->fd), f->size);
    return r;
  }

private:
  static envd_reply answer(const result<vf::entry_stat>& e, int ok_status) {
    if (!e)
      return error_reply(e.error());
    return envd_reply::json_body(ok_status, vf::to_json(*e));
  }

  fd_closer root_;
  std::string what_, method_, path_;
  envd_call call_; // its query
  std::string body_;
};

// "/volumecontent/<id>/<what>" → {id, what}; what is path, dir or file.
status parse_route(const std::string& url, std::string& id, std::string& what) {
  if (url.rfind(route_prefix, 0) != 0)
    return not_found("no route for " + url);
  auto rest = url.substr(std::strlen(route_prefix));
  auto slash = rest.find('/');
  if (slash == std::string::npos)
    return not_found("expected /volumecontent/<volumeID>/(path|dir|file)");
  id = rest.substr(0, slash);
  what = rest.substr(slash + 1);
  if (what != "path" && what != "dir" && what != "file")
    return not_found("expected /volumecontent/<volumeID>/(path|dir|file)");
  return success();
}

status check_method(const std::string& what, const std::string& method) {
  bool ok = (what == "path" && (method == "GET" || method == "PATCH" || method == "DELETE"))
            || (what == "dir" && (method == "GET" || method == "POST"))
            || (what == "file" && (method == "GET" || method == "PUT"));
  if (ok)
    return success();
  return failure{405, "method " + method + " is not allowed on /volumecontent/<volumeID>/" + what};
}

// The bearer token of the request, empty when there is none.
std::string bearer(const envd_call& call) {
  auto auth = call.header("authorization");
  if (auth.size() > 7 && ascii_lower(auth.substr(0, 7)) == "bearer ") {
    auto t = auth.substr(7);
    auto b = t.find_first_not_of(' ');
    return b == std::string::npos ? std::string{} : t.substr(b);
  }
  return {};
}

} // namespace

bool is_volume_content_path(const std::string& path) {
  return path.rfind(route_prefix, 0) == 0 || path == "/volumecontent";
}

envd_reply volume_content_error(const failure& f) {
  return error_reply(f);
}

result<std::unique_ptr<upload_sink>> volume_content_request(envd_call& call) {
  std::string id, what;
  if (auto r = parse_route(call.path, id, what); !r)
    return r.error();
  if (auto m = check_method(what, call.method); !m)
    return m.error();
  auto* ctx = call.ctx;
  if (!ctx->volumes)
    return failure{501, "this server keeps no volumes"};
  auto token = bearer(call);
  if (token.empty())
    return failure{401, "missing volume token (Authorization: Bearer <token>)"};
  if (!valid_volume_id(id))
    return not_found("volume " + id + " not found");
  auto found = ctx->db->find_volume(id);
  if (!found)
    return found.error();
  if (!*found)
    return not_found("volume " + id + " not found");
  const volume& v = **found;
  if (!volume_token_matches(ctx->db->secret(), v, token))
    return failure{401, "invalid volume token"};
  auto path = call.param("path");
  if (!path || path->empty())
    return bad_request("path is required");
  if (auto n = vf::normalize(*path); !n)
    return n.error();
  bool upload = what == "file" && call.method == "PUT";
  auto length = call.header("content-length");
  if (!upload && !length.empty()
      && (!all_digits(length) || length.size() > 12 || std::stoull(length) > max_small_body))
    return failure{413, "the request body is larger than " + std::to_string(max_small_body >> 10)
                          + " KiB"};
  // Parameters checked before the volume is mounted (mounting may make it).
  vf::attributes attrs;
  bool force = false;
  if (upload) {
    auto a = query_attributes(call);
    if (!a)
      return a.error();
    attrs = *a;
    auto f = bool_param(call, "force");
    if (!f)
      return f.error();
    force = *f;
  }
  auto mounted = ctx->volumes->mount(v);
  if (!mounted)
    return mounted.error();
  fd_closer root{::open(mounted->c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  if (root.get() < 0)
    return internal_error(errno_text("cannot open the filesystem of volume " + id));
  if (upload) {
    auto u = vf::upload::begin(root.get(), *path, attrs, force);
    if (!u)
      return u.error();
    return std::unique_ptr<upload_sink>(std::make_unique<upload_into_volume>(std::move(*u)));
  }
  return std::unique_ptr<upload_sink>(
    std::make_unique<small_request>(std::move(root), what, call.method, *path, call));
}

} // namespace sandboxd::http
