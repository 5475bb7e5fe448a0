// E2B's `network.rules` (SDK 2.43+): per destination host, headers the egress
// proxy sets on the sandbox's HTTPS requests, with `${e2b.secrets.<name>}`
// placeholders resolved on the host per request, so a secret's value never
// enters the sandbox. Pure parsing, matching and substitution here; the proxy
// is runtime/egress_proxy.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/inspect.hpp"
#include "core/result.hpp"

namespace sandboxd {

struct egress_header {
  std::string name;  // as given (matched case-insensitively)
  std::string value; // may hold ${e2b.secrets.<name>} placeholders
  bool operator==(const egress_header& o) const { return name == o.name && value == o.value; }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, egress_header& x) {
  // A value may be a literal credential: sent, never printed.
  return f(caf::meta::type_name("egress_header"), x.name, caf::meta::omittable(), x.value);
}

/// One host's transform: its rules' headers merged in order (a later rule's
/// header replaces an earlier one of the same name).
struct egress_rule {
  std::string host; // lower-cased DNS name or "*.suffix"
  std::vector<egress_header> headers;
  bool operator==(const egress_rule& o) const { return host == o.host && headers == o.headers; }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, egress_rule& x) {
  return f(caf::meta::type_name("egress_rule"), x.host, x.headers);
}

constexpr size_t max_rule_hosts = 32;
constexpr size_t max_rules_per_host = 16;
constexpr size_t max_rule_headers = 32;      // per host, after merging
constexpr size_t max_rule_header_value = 8192;

/// E2B's `{host: [{transform: {headers: {name: value}}}]}`; null or absent →
/// none. 400 naming the entry for anything else: hosts must be DNS names or
/// one leading `*.` (not `*`, not an address: rules match TLS server names),
/// header names HTTP tokens (not Host, Content-Length, Transfer-Encoding,
/// Connection), values without control characters, placeholders only
/// `${e2b.secrets.<name>}` (workload identity is not offered).
result<std::vector<egress_rule>> parse_egress_rules(const nlohmann::json& rules);

/// Back to E2B's shape (one rule per host): what sandbox info shows.
nlohmann::json egress_rules_json(const std::vector<egress_rule>& rules);
/// Storage form (the `network.rules` extension) and back; bad text → none.
std::string encode_egress_rules(const std::vector<egress_rule>& rules);
std::vector<egress_rule> decode_egress_rules(const std::string& text);

/// The rule for TLS server name `host`: an exact one, else the longest
/// wildcard suffix (`*.a.b` matches x.a.b and y.x.a.b, never a.b); null if none.
const egress_rule* match_egress_rule(const std::vector<egress_rule>& rules,
                                     std::string_view host);

/// Secret names the rules' placeholders name (sorted, unique).
std::vector<std::string> rule_secret_names(const std::vector<egress_rule>& rules);

/// `value` with each `${e2b.secrets.<name>}` replaced by lookup(name); the
/// first failing lookup's error otherwise.
result<std::string> resolve_placeholders(
  const std::string& value, const std::function<result<std::string>(const std::string&)>& lookup);

} // namespace sandboxd
