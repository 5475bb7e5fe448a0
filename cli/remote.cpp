#include "cli/remote.hpp"

#include <curl/curl.h>

#include <strings.h>

#include <memory>

#include "runtime/base64.hpp"

namespace sandboxd::cli {

namespace {

struct curl_free_all {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct slist_free {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct sink {
  CURL* h = nullptr;
  std::string body;
  std::string next_token; // E2B's pagination header, x-next-token
  const std::function<bool(std::string_view)>* on_data = nullptr;
  size_t limit = 256u << 20; // a buffered answer: at most this much
};

size_t on_bytes(char* data, size_t, size_t n, void* user) {
  auto* s = static_cast<sink*>(user);
  long status = 0;
  curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
  if (s->on_data && status == 200) // an error's body is kept for its message
    return (*s->on_data)(std::string_view(data, n)) ? n : 0;
  if (s->body.size() + n > s->limit)
    return 0;
  s->body.append(data, n);
  return n;
}

size_t on_header(char* data, size_t, size_t n, void* user) {
  std::string_view line(data, n);
  constexpr std::string_view name = "x-next-token:";
  if (line.size() > name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
    auto value = line.substr(name.size());
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.remove_suffix(1);
    static_cast<sink*>(user)->next_token = std::string(value);
  }
  return n;
}

result<reply> perform(const remote_config& c, const std::string& method, const std::string& url,
                      const std::map<std::string, std::string>& headers, const std::string& body,
                      const std::function<bool(std::string_view)>* on_data) {
  std::unique_ptr<CURL, curl_free_all> h{curl_easy_init()};
  if (!h)
    return internal_error("cannot make an HTTP client");
  std::unique_ptr<curl_slist, slist_free> list;
  for (auto& [k, v] : headers)
    list.reset(curl_slist_append(list.release(), (k + ": " + v).c_str()));
  // No "Expect: 100-continue" round trip before a body.
  list.reset(curl_slist_append(list.release(), "Expect:"));
  sink s;
  s.h = h.get();
  s.on_data = on_data;
  curl_easy_setopt(h.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(h.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h.get(), CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, on_bytes);
  curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h.get(), CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h.get(), CURLOPT_HEADERDATA, &s);
  curl_easy_setopt(h.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h.get(), CURLOPT_CONNECTTIMEOUT, 30L);
  if (!on_data)
    curl_easy_setopt(h.get(), CURLOPT_TIMEOUT, 600L);
  if (method == "HEAD")
    curl_easy_setopt(h.get(), CURLOPT_NOBODY, 1L);
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    curl_easy_setopt(h.get(), CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  if (!c.ca_file.empty())
    curl_easy_setopt(h.get(), CURLOPT_CAINFO, c.ca_file.c_str());
  char err[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h.get(), CURLOPT_ERRORBUFFER, err);
  auto rc = curl_easy_perform(h.get());
  reply r;
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &r.status);
  if (rc == CURLE_WRITE_ERROR && on_data && r.status == 200)
    return r; // the caller stopped reading
  if (rc != CURLE_OK)
    return failure{502, url + ": " + (err[0] ? std::string(err) : curl_easy_strerror(rc))};
  r.body = std::move(s.body);
  r.next_token = std::move(s.next_token);
  return r;
}

std::string trim_slash(std::string u) {
  while (!u.empty() && u.back() == '/')
    u.pop_back();
  return u;
}

std::map<std::string, std::string> envd_headers(const envd_target& t, const std::string& user,
                                                std::map<std::string, std::string> extra) {
  extra["E2b-Sandbox-Id"] = t.id;
  extra["E2b-Sandbox-Port"] = "49983";
  if (!t.token.empty())
    extra["X-Access-Token"] = t.token;
  extra["Authorization"] = "Basic " + base64::encode(user + ":");
  return extra;
}

} // namespace

failure failure_of(const reply& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return failure{static_cast<int>(r.status), j["message"].get<std::string>()};
  auto text = r.body.substr(0, 300);
  return failure{static_cast<int>(r.status),
                 text.empty() ? "HTTP " + std::to_string(r.status) : text};
}

result<json> remote::api(const std::string& method, const std::string& path, const json* body,
                         std::string* next_token) {
  std::map<std::string, std::string> headers{{"X-API-Key", c_.api_key},
                                             {"Accept", "application/json"}};
  std::string text;
  if (body) {
    headers["Content-Type"] = "application/json";
    text = body->dump();
  }
  auto r = perform(c_, method, trim_slash(c_.api_url) + path, headers, text, nullptr);
  if (!r)
    return r.error();
  if (r->status < 200 || r->status >= 300)
    return failure_of(*r);
  if (next_token)
    *next_token = r->next_token;
  if (r->body.empty())
    return json(nullptr);
  auto j = json::parse(r->body, nullptr, false);
  if (j.is_discarded())
    return failure{502, "the server answered " + path + " with something that is not JSON"};
  return j;
}

bool is_sandbox_id(const std::string& id) {
  return !id.empty() && id.size() <= 64
         && id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
              == std::string::npos;
}

result<envd_target> remote::target(const std::string& id) {
  if (!is_sandbox_id(id))
    return bad_request("not a sandbox id: " + id);
  auto detail = api("GET", "/sandboxes/" + id);
  if (!detail)
    return detail.error();
  envd_target t;
  t.id = id;
  t.token = detail->value("envdAccessToken", "");
  if (!c_.envd_url.empty()) {
    t.url = trim_slash(c_.envd_url);
    return t;
  }
  // As the SDKs do: https://49983-<id>.<domain> when the server has a
  // domain; else the API's host on envd's port.
  auto scheme_end = c_.api_url.find("://");
  auto scheme = scheme_end == std::string::npos ? "http" : c_.api_url.substr(0, scheme_end);
  auto domain = detail->contains("domain") && (*detail)["domain"].is_string()
                  ? (*detail)["domain"].get<std::string>() : "";
  if (!domain.empty()) {
    t.url = scheme + "://49983-" + id + "." + domain;
    return t;
  }
  auto host = scheme_end == std::string::npos ? c_.api_url : c_.api_url.substr(scheme_end + 3);
  host = host.substr(0, host.find('/'));
  if (host.rfind('[', 0) == 0)
    host = host.substr(0, host.find(']') + 1);
  else
    host = host.substr(0, host.find(':'));
  t.url = scheme + "://" + host + ":49983";
  return t;
}

result<reply> remote::envd(const envd_target& t, const std::string& method,
                           const std::string& path, std::map<std::string, std::string> headers,
                           const std::string& body, const std::string& user) {
  return perform(c_, method, t.url + path, envd_headers(t, user, std::move(headers)), body,
                 nullptr);
}

result<long> remote::envd_stream(const envd_target& t, const std::string& path,
                                 std::map<std::string, std::string> headers,
                                 const std::string& body, const std::string& user,
                                 const std::function<bool(std::string_view)>& on_data) {
  auto r = perform(c_, "POST", t.url + path, envd_headers(t, user, std::move(headers)), body,
                   &on_data);
  if (!r)
    return r.error();
  if (r->status != 200)
    return failure_of(*r);
  return r->status;
}

} // namespace sandboxd::cli
