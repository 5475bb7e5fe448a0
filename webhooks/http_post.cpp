#include "webhooks/http_post.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <memory>

namespace sandboxd::webhooks {

namespace {

bool is_link_local(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    auto a = ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr);
    return (a >> 16) == 0xa9fe; // 169.254.0.0/16, the metadata address among them
  }
  if (sa->sa_family == AF_INET6) {
    auto* b = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
      return true; // fe80::/10
    static const unsigned char ec2[16] = {0xfd, 0, 0xec, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x54};
    if (std::memcmp(b, ec2, 16) == 0)
      return true; // fd00:ec2::254
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, mapped, 12) == 0)
      return b[12] == 169 && b[13] == 254;
  }
  return false;
}

struct call_state {
  bool allow_private = false;
  bool refused = false;
  std::optional<int64_t> retry_after;
};

curl_socket_t open_socket(void* clientp, curlsocktype, curl_sockaddr* addr) {
  auto* st = static_cast<call_state*>(clientp);
  if (!st->allow_private && is_link_local(&addr->addr)) {
    st->refused = true;
    return CURL_SOCKET_BAD;
  }
  return ::socket(addr->family, addr->socktype, addr->protocol);
}

size_t on_header(char* data, size_t size, size_t n, void* userdata) {
  std::string line(data, size * n);
  auto* st = static_cast<call_state*>(userdata);
  const std::string name = "retry-after:";
  if (line.size() > name.size()
      && strncasecmp(line.c_str(), name.c_str(), name.size()) == 0) {
    auto v = line.substr(name.size());
    v.erase(0, v.find_first_not_of(" \t"));
    char* end = nullptr;
    auto secs = std::strtoll(v.c_str(), &end, 10);
    if (end != v.c_str() && secs >= 0)
      st->retry_after = secs;
  }
  return size * n;
}

size_t discard(char*, size_t size, size_t n, void*) {
  return size * n;
}

} // namespace

void init_http_client() {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

status validate_url(const std::string& url, bool allow_private) {
  // curl reads "http:///x" as host "x"; a URL must name its host itself.
  auto sep = url.find("://");
  if (sep == std::string::npos || sep + 3 >= url.size() || url[sep + 3] == '/')
    return bad_request("url must be an absolute http(s) URL with a host");
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u{curl_url(), curl_url_cleanup};
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
    return bad_request("url is not a valid URL: " + url);
  char* scheme = nullptr;
  char* host = nullptr;
  curl_url_get(u.get(), CURLUPART_SCHEME, &scheme, 0);
  curl_url_get(u.get(), CURLUPART_HOST, &host, 0);
  std::string sch = scheme ? scheme : "", h = host ? host : "";
  curl_free(scheme);
  curl_free(host);
  if (sch != "http" && sch != "https")
    return bad_request("url must be http or https");
  if (h.empty())
    return bad_request("url has no host");
  if (allow_private)
    return success();
  for (auto& c : h)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (h == "metadata.google.internal" || h == "metadata")
    return bad_request("url points at a cloud metadata service");
  auto literal = h.front() == '[' ? h.substr(1, h.size() - 2) : h;
  sockaddr_storage ss{};
  if (inet_pton(AF_INET, literal.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1)
    ss.ss_family = AF_INET;
  else if (inet_pton(AF_INET6, literal.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1)
    ss.ss_family = AF_INET6;
  if (ss.ss_family != 0 && is_link_local(reinterpret_cast<sockaddr*>(&ss)))
    return bad_request("url points at a link-local or metadata address");
  return success();
}

post_result post(const std::string& url,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 const std::string& body, std::chrono::milliseconds timeout, bool allow_private) {
  post_result r;
  call_state st;
  st.allow_private = allow_private;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl{curl_easy_init(), curl_easy_cleanup};
  curl_slist* list = nullptr;
  for (auto& [k, v] : headers)
    list = curl_slist_append(list, (k + ": " + v).c_str());
  auto* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &st);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &st);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
  auto t0 = std::chrono::steady_clock::now();
  auto rc = curl_easy_perform(h);
  r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
  curl_slist_free_all(list);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  r.http_status = static_cast<int>(code);
  r.retry_after_s = st.retry_after;
  if (st.refused) {
    r.error_class = "refused_address";
    r.error_message = "the host resolved to a link-local or metadata address";
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    r.error_class = "timeout";
    r.error_message = "no answer within " + std::to_string(timeout.count()) + " ms";
  } else if (rc != CURLE_OK) {
    r.error_class = "transport_error";
    r.error_message = curl_easy_strerror(rc);
  } else if (code < 200 || code > 299) {
    r.error_class = "http_error";
    r.error_message = "HTTP " + std::to_string(code);
  }
  return r;
}

} // namespace sandboxd::webhooks
