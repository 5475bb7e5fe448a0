#include "webhooks/http_post.hpp"

#include <curl/curl.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <memory>
#include <strings.h>

#include "webhooks/address_policy.hpp"

namespace sandboxd::webhooks {

namespace {

struct call_state {
  bool allow_private = false;
  std::optional<std::string> refused; // why the first refused address was
  std::optional<int64_t> retry_after;
};

// Runs for every address curl is about to connect to, after its own DNS
// lookup: the check registration made, made again on the real peer.
curl_socket_t open_socket(void* clientp, curlsocktype, curl_sockaddr* addr) {
  auto* st = static_cast<call_state*>(clientp);
  auto ip = from_sockaddr(&addr->addr);
  auto why = ip ? refusal(*ip, st->allow_private)
                : std::optional<std::string>{"address family " + std::to_string(addr->family)
                                             + " is not IP"};
  if (why) {
    if (!st->refused)
      st->refused = why;
    return CURL_SOCKET_BAD; // curl goes on to the name's next address, if any
  }
  return ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
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

struct parsed_url {
  std::string host; // as curl will connect to it: IPv6 without brackets
};

result<parsed_url> parse_url(const std::string& url) {
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
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
    h = h.substr(1, h.size() - 2);
  if (h.empty())
    return bad_request("url has no host");
  return parsed_url{h};
}

} // namespace

void init_http_client() {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

status validate_url(const std::string& url) {
  auto parsed = parse_url(url);
  if (!parsed)
    return parsed.error();
  return success();
}

status check_destination(const std::string& url, bool allow_private) {
  auto parsed = parse_url(url);
  if (!parsed)
    return parsed.error();
  if (allow_private)
    return success();
  auto host = parsed->host;
  if (auto ip = parse_ip_literal(host)) {
    if (auto why = refusal(*ip, false))
      return bad_request("url host " + *why);
    return success();
  }
  auto name = host;
  for (auto& c : name)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!name.empty() && name.back() == '.')
    name.pop_back();
  // curl answers these itself with loopback addresses, whatever DNS says.
  if (name == "localhost" || (name.size() > 10 && name.compare(name.size() - 10, 10, ".localhost") == 0))
    return bad_request("url host " + host + ", address class loopback (curl connects the name "
                       "to loopback itself), is not public; " + std::string(private_hint));
  if (name == "metadata.google.internal" || name == "metadata.goog" || name == "metadata")
    return bad_request("url host " + host + ", address class cloud metadata (a metadata "
                       "service name), is not public; " + std::string(private_hint));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0)
    return bad_request("url host " + host + " does not resolve: " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned{found, freeaddrinfo};
  for (auto* ai = found; ai; ai = ai->ai_next) {
    auto ip = from_sockaddr(ai->ai_addr);
    if (!ip)
      continue;
    if (auto why = refusal(*ip, false))
      return bad_request("url host " + host + " resolves to a refused address: " + *why);
  }
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
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_PROXY, ""); // not even http_proxy from the environment
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); // a redirect could lead anywhere
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
  if (rc != CURLE_OK && st.refused) {
    r.error_class = "refused_address";
    r.error_message = "connection refused by policy: " + *st.refused;
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    r.error_class = "timeout";
    r.error_message = "no answer within " + std::to_string(timeout.count()) + " ms";
  } else if (rc != CURLE_OK) {
    r.error_class = "transport_error";
    r.error_message = curl_easy_strerror(rc);
  } else if (code >= 300 && code <= 399) {
    char* location = nullptr;
    curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location);
    r.error_class = "http_error";
    r.error_message = "HTTP " + std::to_string(code) + ": redirects are not followed"
                      + (location ? " (to " + std::string(location).substr(0, 200) + ")"
                                  : std::string());
  } else if (code < 200 || code > 299) {
    r.error_class = "http_error";
    r.error_message = "HTTP " + std::to_string(code);
  }
  return r;
}

} // namespace sandboxd::webhooks
