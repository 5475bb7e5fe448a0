// Which addresses a webhook may reach. One classifier, used when a URL is
// registered (on every address its host resolves to) and again when libcurl
// is about to connect (on the address it actually connects to), so neither a
// clever spelling nor a DNS answer that changes later reaches inside.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;

namespace sandboxd::webhooks {

enum class address_class {
  global,       // the only class delivered to by default
  loopback,     // 127/8, ::1
  unspecified,  // 0/8 ("this network"; Linux connects 0.0.0.0 to itself), ::
  private_use,  // RFC 1918: 10/8, 172.16/12, 192.168/16
  shared,       // RFC 6598 carrier-grade NAT: 100.64/10
  unique_local, // fc00::/7
  link_local,   // 169.254/16, fe80::/10
  metadata,     // cloud instance metadata: 169.254.169.254, fd00:ec2::254, ...
  multicast,    // 224/4, ff00::/8
  broadcast,    // 255.255.255.255
  reserved,     // documentation, benchmarking, 240/4, IPv6 outside 2000::/3, ...
};

/// "loopback", "private (RFC 1918)", ...: for messages.
std::string_view describe(address_class c);

/// An IPv4 (host byte order) or IPv6 address.
struct ip_address {
  bool v6 = false;
  uint32_t v4 = 0;
  std::array<uint8_t, 16> bytes{};
  std::string to_string() const;
};

/// Pure. IPv6 forms that carry an IPv4 address (mapped ::ffff:a.b.c.d,
/// compatible ::a.b.c.d, SIIT ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96, 6to4
/// 2002::/16) are classified as the IPv4 address they carry.
address_class classify(const ip_address& a);

/// The address in a socket address; nullopt for other families.
std::optional<ip_address> from_sockaddr(const sockaddr* sa);

/// Parses a host the way getaddrinfo reads a numeric one: IPv4 in every form
/// inet_aton takes (127.1, 2130706433, 0x7f000001, 0177.0.0.1) and IPv6 with
/// or without brackets and a %zone. nullopt when `host` is not numeric.
std::optional<ip_address> parse_ip_literal(std::string_view host);

/// How an operator opens the policy; ends every refusal.
extern const std::string_view private_hint;

/// Why a connection to `a` is refused, or nullopt when it is allowed.
/// `allow_private` (serve --allow-private-webhooks true) allows every class.
std::optional<std::string> refusal(const ip_address& a, bool allow_private);

} // namespace sandboxd::webhooks
