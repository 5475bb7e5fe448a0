#include "http/server.hpp"

#include <algorithm>
#include <atomic>
#include <sstream>

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <spdlog/spdlog.h>

#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

using namespace Pistache;

namespace {

constexpr size_t max_body = 16 * 1024 * 1024;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

} // namespace

// -- responder ----------------------------------------------------------------

namespace {

// A response header named at run time: Pistache only writes typed headers,
// and its CUSTOM_HEADER needs a C++ identifier for a name.
class named_header : public Http::Header::Header {
public:
  named_header(std::string name, std::string value)
    : name_(std::move(name)), value_(std::move(value)) {}
  const char* name() const override { return name_.c_str(); }
#ifdef SAFE_HEADER_CAST
  uint64_t hash() const override { return Http::Header::detail::hash(name_.c_str()); }
#endif
  void parse(const std::string& data) override { value_ = data; }
  void write(std::ostream& os) const override { os << value_; }

private:
  std::string name_;
  std::string value_;
};

} // namespace

struct responder::impl {
  Http::ResponseWriter w;
  std::atomic<bool> sent{false};
  explicit impl(Http::ResponseWriter&& x) : w(std::move(x)) {}
};

responder::responder(Http::ResponseWriter&& w)
  : impl_(std::make_unique<impl>(std::move(w))) {}

responder::~responder() {
  // A handler that lost its reply still answers, never leaves a hung client.
  if (!impl_->sent)
    send_error(internal_error("the request was dropped without a reply"));
}

void responder::send_json(int status, const json& body) {
  if (impl_->sent.exchange(true))
    return;
  impl_->w.headers().add<Http::Header::ContentType>(MIME(Application, Json));
  impl_->w.send(static_cast<Http::Code>(status), body.dump());
}

void responder::send_json_with_headers(int status, const json& body,
                                       const std::map<std::string, std::string>& headers) {
  if (impl_->sent.exchange(true))
    return;
  impl_->w.headers().add<Http::Header::ContentType>(MIME(Application, Json));
  for (auto& [k, v] : headers)
    impl_->w.headers().add(std::make_shared<named_header>(k, v));
  impl_->w.send(static_cast<Http::Code>(status), body.dump());
}

void responder::send_text(int status, const std::string& body,
                          const std::string& content_type) {
  if (impl_->sent.exchange(true))
    return;
  impl_->w.headers().add(std::make_shared<named_header>("Content-Type", content_type));
  impl_->w.send(static_cast<Http::Code>(status), body);
}

void responder::send_empty(int status) {
  if (impl_->sent.exchange(true))
    return;
  impl_->w.send(static_cast<Http::Code>(status));
}

void responder::send_error(const failure& f) {
  send_json(f.status, {{"code", f.status}, {"message", f.message}});
}

// -- dispatch -------------------------------------------------------------------

namespace {

class api_handler : public Http::Handler {
public:
  HTTP_PROTOTYPE(api_handler)

  explicit api_handler(api_context* ctx) : ctx_(ctx) {}

  void onRequest(const Http::Request& in, Http::ResponseWriter w) override {
    request req;
    req.out = std::make_shared<responder>(std::move(w));
    try {
      dispatch(in, req);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", req.method, req.path, e.what());
      req.out->send_error(internal_error(e.what()));
    }
  }

private:
  void dispatch(const Http::Request& in, request& req) {
    req.method = Http::methodString(in.method());
    req.path = in.resource();
    for (auto it = in.query().parameters_begin(); it != in.query().parameters_end(); ++it)
      req.query[url_decode(it->first)] = url_decode(it->second);
    for (auto& [name, raw] : in.headers().rawList())
      req.headers[lower(name)] = raw.value();
    for (auto& h : in.headers().list()) {
      std::ostringstream os;
      h->write(os);
      req.headers[lower(h->name())] = os.str();
    }
    if (in.body().size() > max_body)
      return req.out->send_error({413, "request body is larger than 16 MiB"});
    req.body = in.body();
    const route* found = nullptr;
    bool path_known = false;
    for (auto& r : control_plane_routes()) {
      std::map<std::string, std::string> params;
      if (!match_route(r.pattern, req.path, params))
        continue;
      path_known = true;
      if (r.method == req.method) {
        found = &r;
        req.params = std::move(params);
        break;
      }
    }
    if (!found) {
      if (path_known)
        return req.out->send_error({405, "method " + req.method
                                           + " is not allowed on " + req.path});
      return req.out->send_error(not_found("no route for " + req.method + " " + req.path));
    }
    if (found->needs_auth) {
      auto key = req.header("x-api-key");
      if (key.empty()) {
        auto auth = req.header("authorization");
        if (auth.rfind("Bearer ", 0) == 0)
          key = auth.substr(7);
      }
      if (key.empty())
        return req.out->send_error(
          {401, "missing API key: send X-API-Key or Authorization: Bearer"});
      auto org = ctx_->db->org_of_key(key);
      if (!org)
        return req.out->send_error({401, "invalid API key"});
      req.org = *org;
    }
    found->handler(*ctx_, req);
  }

  api_context* ctx_;
};

} // namespace

struct api_server::impl {
  std::unique_ptr<Http::Endpoint> endpoint;
};

result<std::pair<std::string, uint16_t>> parse_listen(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    return bad_request("listen address must be HOST:PORT, got '" + s + "'");
  auto port_str = s.substr(colon + 1);
  if (port_str.find_first_not_of("0123456789") != std::string::npos
      || port_str.size() > 5)
    return bad_request("bad port in '" + s + "'");
  auto port = std::stoi(port_str);
  if (port < 1 || port > 65535)
    return bad_request("bad port in '" + s + "'");
  return std::make_pair(s.substr(0, colon), static_cast<uint16_t>(port));
}

result<std::unique_ptr<api_server>>
api_server::start(api_context& ctx, const std::string& listen, int threads) {
  auto hp = parse_listen(listen);
  if (!hp)
    return hp.error();
  std::unique_ptr<api_server> srv{new api_server};
  srv->impl_ = std::make_unique<impl>();
  try {
    Address addr{hp->first, Port{hp->second}};
    srv->impl_->endpoint = std::make_unique<Http::Endpoint>(addr);
    auto opts = Http::Endpoint::options()
                  .threads(threads)
                  .flags(Tcp::Options::ReuseAddr)
                  .maxRequestSize(max_body + 64 * 1024)
                  .maxResponseSize(64 * 1024 * 1024);
    srv->impl_->endpoint->init(opts);
    srv->impl_->endpoint->setHandler(Http::make_handler<api_handler>(&ctx));
    srv->impl_->endpoint->serveThreaded();
  } catch (const std::exception& e) {
    return failure{500, "cannot listen on " + listen + ": " + e.what()};
  }
  return srv;
}

void api_server::stop() {
  if (impl_ && impl_->endpoint) {
    impl_->endpoint->shutdown();
    impl_->endpoint.reset();
  }
}

api_server::~api_server() {
  stop();
}

} // namespace sandboxd::http
