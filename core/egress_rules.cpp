#include "core/egress_rules.hpp"

#include <algorithm>
#include <set>

#include "core/ascii.hpp"
#include "core/dns_name.hpp"

namespace sandboxd {

namespace {

constexpr std::string_view secret_open = "${e2b.secrets.";

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
         || std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

bool is_token(const std::string& s) {
  return !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), is_token_char);
}

// Headers that frame or route the request: the proxy owns them.
bool reserved_header(const std::string& lower) {
  for (auto* n : {"host", "content-length", "transfer-encoding", "connection", "upgrade",
                  "keep-alive", "te", "trailer", "proxy-connection"})
    if (lower == n)
      return true;
  return false;
}

// Each `${` opens a placeholder, which must be `${e2b.secrets.<name>}`; the
// names are appended to `names`. A literal "${" cannot be written.
status scan_placeholders(const std::string& value, std::vector<std::string>* names) {
  size_t at = 0;
  while ((at = value.find("${", at)) != std::string::npos) {
    auto end = value.find('}', at);
    if (end == std::string::npos)
      return bad_request("an unterminated '${' placeholder");
    auto inner = value.substr(at, end - at + 1);
    if (inner.compare(0, secret_open.size(), secret_open) != 0) {
      if (inner.rfind("${e2b.identity.", 0) == 0)
        return bad_request("placeholder " + inner
                           + ": workload identity tokens are not offered by this server");
      return bad_request("placeholder " + inner + ": only ${e2b.secrets.<name>} is known");
    }
    auto name = inner.substr(secret_open.size(), inner.size() - secret_open.size() - 1);
    if (name.empty() || name.find('{') != std::string::npos)
      return bad_request("placeholder " + inner + " names no secret");
    if (names)
      names->push_back(ascii_lower(name));
    at = end + 1;
  }
  return success();
}

} // namespace

result<std::vector<egress_rule>> parse_egress_rules(const nlohmann::json& rules) {
  std::vector<egress_rule> out;
  if (rules.is_null())
    return out;
  if (!rules.is_object())
    return bad_request("network.rules must be an object {host: [{transform: {headers}}]}");
  if (rules.size() > max_rule_hosts)
    return bad_request("network.rules: at most " + std::to_string(max_rule_hosts) + " hosts");
  std::set<std::string> seen;
  for (auto& [key, list] : rules.items()) {
    auto host = ascii_lower(key);
    auto where = "network.rules['" + key.substr(0, 64) + "']";
    if (host == "*" || !(is_domain(host) || is_wildcard_domain(host)))
      return bad_request(where + ": a rule's key is a DNS name (api.example.com) or one leading"
                                 " wildcard (*.example.com); rules match TLS server names,"
                                 " so neither an address nor a bare * is one");
    if (!seen.insert(host).second)
      return bad_request(where + ": the host is listed twice");
    if (!list.is_array())
      return bad_request(where + " must be an array of rules");
    if (list.size() > max_rules_per_host)
      return bad_request(where + ": at most " + std::to_string(max_rules_per_host) + " rules");
    egress_rule rule{host, {}};
    for (auto& r : list) {
      if (!r.is_object())
        return bad_request(where + ": a rule must be an object {transform: {headers}}");
      for (auto& [field, _] : r.items())
        if (field != "transform")
          return bad_request(where + ": unknown rule field '" + field.substr(0, 64) + "'");
      auto t = r.find("transform");
      if (t == r.end() || t->is_null())
        continue;
      if (!t->is_object())
        return bad_request(where + ".transform must be an object {headers}");
      for (auto& [field, _] : t->items())
        if (field != "headers")
          return bad_request(where + ".transform: unknown field '" + field.substr(0, 64) + "'");
      auto h = t->find("headers");
      if (h == t->end() || h->is_null())
        continue;
      if (!h->is_object())
        return bad_request(where + ".transform.headers must be an object of strings");
      for (auto& [name, value] : h->items()) {
        if (!is_token(name) || reserved_header(ascii_lower(name)))
          return bad_request(where + ": header '" + name.substr(0, 64)
                             + "' is not a header a rule may set");
        if (!value.is_string())
          return bad_request(where + ": header " + name + " must be a string");
        auto v = value.get<std::string>();
        if (v.size() > max_rule_header_value)
          return bad_request(where + ": header " + name + " is longer than "
                             + std::to_string(max_rule_header_value) + " bytes");
        if (std::any_of(v.begin(), v.end(), [](char c) {
              return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
            }))
          return bad_request(where + ": header " + name + " holds a control character");
        if (auto st = scan_placeholders(v, nullptr); !st)
          return bad_request(where + ": header " + name + ": " + st.error().message);
        auto lower = ascii_lower(name);
        auto same = std::find_if(rule.headers.begin(), rule.headers.end(),
                                 [&](auto& x) { return ascii_lower(x.name) == lower; });
        if (same != rule.headers.end())
          same->value = v;
        else
          rule.headers.push_back({name, v});
      }
    }
    if (rule.headers.size() > max_rule_headers)
      return bad_request(where + ": at most " + std::to_string(max_rule_headers) + " headers");
    out.push_back(std::move(rule));
  }
  return out;
}

nlohmann::json egress_rules_json(const std::vector<egress_rule>& rules) {
  auto out = nlohmann::json::object();
  for (auto& r : rules) {
    auto headers = nlohmann::json::object();
    for (auto& h : r.headers)
      headers[h.name] = h.value;
    out[r.host] = nlohmann::json::array({{{"transform", {{"headers", headers}}}}});
  }
  return out;
}

std::string encode_egress_rules(const std::vector<egress_rule>& rules) {
  return egress_rules_json(rules).dump();
}

std::vector<egress_rule> decode_egress_rules(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  auto r = parse_egress_rules(j.is_discarded() ? nlohmann::json() : j);
  return r ? std::move(*r) : std::vector<egress_rule>{};
}

const egress_rule* match_egress_rule(const std::vector<egress_rule>& rules,
                                     std::string_view host) {
  auto name = ascii_lower(std::string{host});
  const egress_rule* best = nullptr;
  for (auto& r : rules) {
    if (r.host == name)
      return &r;
    if (r.host.size() > 2 && r.host[0] == '*') {
      std::string_view suffix{r.host.data() + 1, r.host.size() - 1}; // ".example.com"
      if (name.size() > suffix.size()
          && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0
          && (!best || r.host.size() > best->host.size()))
        best = &r;
    }
  }
  return best;
}

std::vector<std::string> rule_secret_names(const std::vector<egress_rule>& rules) {
  std::vector<std::string> names;
  for (auto& r : rules)
    for (auto& h : r.headers)
      (void)scan_placeholders(h.value, &names); // parsed already: cannot fail
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

result<std::string> resolve_placeholders(
  const std::string& value, const std::function<result<std::string>(const std::string&)>& lookup) {
  std::string out;
  size_t at = 0;
  for (;;) {
    auto open = value.find(secret_open, at);
    if (open == std::string::npos)
      break;
    auto end = value.find('}', open);
    if (end == std::string::npos)
      break;
    out.append(value, at, open - at);
    auto name = ascii_lower(value.substr(open + secret_open.size(),
                                         end - open - secret_open.size()));
    auto v = lookup(name);
    if (!v)
      return v.error();
    out += *v;
    at = end + 1;
  }
  out.append(value, at, std::string::npos);
  return out;
}

} // namespace sandboxd
