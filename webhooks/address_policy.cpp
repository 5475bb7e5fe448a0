#include "webhooks/address_policy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace sandboxd::webhooks {

namespace {

bool in4(uint32_t a, uint32_t net, int bits) {
  auto mask = bits == 0 ? 0u : ~uint32_t{0} << (32 - bits);
  return (a & mask) == net;
}

uint32_t v4_at(const std::array<uint8_t, 16>& b, size_t i) {
  return uint32_t{b[i]} << 24 | uint32_t{b[i + 1]} << 16 | uint32_t{b[i + 2]} << 8 | b[i + 3];
}

bool zeros(const std::array<uint8_t, 16>& b, size_t from, size_t to) {
  for (auto i = from; i < to; ++i)
    if (b[i] != 0)
      return false;
  return true;
}

address_class classify4(uint32_t a) {
  // Exact metadata addresses first: they sit inside wider ranges below.
  if (a == 0xa9fea9fe    // 169.254.169.254: AWS, GCP, Azure, OpenStack, ...
      || a == 0xa9feaa02 // 169.254.170.2: AWS ECS task metadata
      || a == 0x646464c8) // 100.100.100.200: Alibaba Cloud
    return address_class::metadata;
  if (in4(a, 0x00000000, 8))
    return address_class::unspecified;
  if (in4(a, 0x7f000000, 8))
    return address_class::loopback;
  if (in4(a, 0x0a000000, 8) || in4(a, 0xac100000, 12) || in4(a, 0xc0a80000, 16))
    return address_class::private_use;
  if (in4(a, 0x64400000, 10))
    return address_class::shared;
  if (in4(a, 0xa9fe0000, 16))
    return address_class::link_local;
  if (a == 0xffffffff)
    return address_class::broadcast;
  if (in4(a, 0xe0000000, 4))
    return address_class::multicast;
  if (in4(a, 0xf0000000, 4)        // 240/4, future use
      || in4(a, 0xc0000000, 24)    // 192.0.0/24, IETF protocol assignments
      || in4(a, 0xc0000200, 24)    // 192.0.2/24, documentation
      || in4(a, 0xc6336400, 24)    // 198.51.100/24, documentation
      || in4(a, 0xcb007100, 24)    // 203.0.113/24, documentation
      || in4(a, 0xc6120000, 15)    // 198.18/15, benchmarking
      || in4(a, 0xc0586300, 24))   // 192.88.99/24, 6to4 relays (deprecated)
    return address_class::reserved;
  return address_class::global;
}

address_class classify6(const std::array<uint8_t, 16>& b) {
  if (zeros(b, 0, 16))
    return address_class::unspecified;
  if (zeros(b, 0, 15) && b[15] == 1)
    return address_class::loopback;
  // Forms that carry an IPv4 address reach (or are translated to) it.
  if (zeros(b, 0, 12)) // ::a.b.c.d, IPv4-compatible (deprecated)
    return classify4(v4_at(b, 12));
  if (zeros(b, 0, 10) && b[10] == 0xff && b[11] == 0xff) // ::ffff:a.b.c.d, mapped
    return classify4(v4_at(b, 12));
  if (zeros(b, 0, 8) && b[8] == 0xff && b[9] == 0xff && zeros(b, 10, 12)) // SIIT
    return classify4(v4_at(b, 12));
  if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zeros(b, 4, 12)) // NAT64
    return classify4(v4_at(b, 12));
  if (b[0] == 0x20 && b[1] == 0x02) // 2002:a.b.c.d::/48, 6to4
    return classify4(v4_at(b, 2));
  static const std::array<uint8_t, 16> ec2 = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                              0,    0,    0,    0,    0, 0, 0x02, 0x54};
  if (b == ec2) // fd00:ec2::254, AWS's IPv6 metadata endpoint
    return address_class::metadata;
  if ((b[0] & 0xfe) == 0xfc)
    return address_class::unique_local;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
    return address_class::link_local;
  if (b[0] == 0xff)
    return address_class::multicast;
  // Global unicast is 2000::/3; inside it, IETF assignments (Teredo,
  // benchmarking, ORCHID: 2001::/23), documentation 2001:db8::/32 and 3fff::/20.
  if ((b[0] & 0xe0) != 0x20 || (b[0] == 0x20 && b[1] == 0x01 && b[2] < 2)
      || (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
      || (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0))
    return address_class::reserved;
  return address_class::global;
}

// One inet_aton part: decimal, 0x hex or 0 octal, no sign, no blanks.
std::optional<uint64_t> aton_part(std::string_view s) {
  int base = 10;
  if (s.size() > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  if (s.empty())
    return base == 16 ? std::nullopt : std::optional<uint64_t>{0};
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return std::nullopt;
    if (d >= base)
      return std::nullopt;
    v = v * base + d;
    if (v > 0xffffffffull)
      return std::nullopt;
  }
  return v;
}

// inet_aton's grammar: a, a.b (b 24 bits), a.b.c (c 16 bits), a.b.c.d.
std::optional<uint32_t> parse_aton(std::string_view s) {
  uint64_t parts[4];
  size_t n = 0;
  while (true) {
    auto dot = s.find('.');
    if (n == 4)
      return std::nullopt;
    auto p = aton_part(s.substr(0, dot));
    if (!p || s.substr(0, dot).empty())
      return std::nullopt;
    parts[n++] = *p;
    if (dot == std::string_view::npos)
      break;
    s.remove_prefix(dot + 1);
  }
  uint64_t v = 0;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (parts[i] > 0xff)
      return std::nullopt;
    v |= parts[i] << (24 - 8 * i);
  }
  auto last_bits = 32 - 8 * (n - 1);
  if (last_bits < 32 && parts[n - 1] >> last_bits)
    return std::nullopt;
  return static_cast<uint32_t>(v | parts[n - 1]);
}

} // namespace

const std::string_view private_hint =
  "webhooks reach only public addresses unless sandboxd serve runs with "
  "--allow-private-webhooks true";

std::string_view describe(address_class c) {
  switch (c) {
    case address_class::global: return "public";
    case address_class::loopback: return "loopback";
    case address_class::unspecified: return "unspecified (0.0.0.0/8, ::)";
    case address_class::private_use: return "private (RFC 1918)";
    case address_class::shared: return "shared/carrier-grade NAT (100.64.0.0/10)";
    case address_class::unique_local: return "unique-local (fc00::/7)";
    case address_class::link_local: return "link-local";
    case address_class::metadata: return "cloud metadata";
    case address_class::multicast: return "multicast";
    case address_class::broadcast: return "broadcast";
    case address_class::reserved: return "reserved (special-purpose)";
  }
  return "unknown";
}

std::string ip_address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (v6) {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  } else {
    in_addr a{htonl(v4)};
    inet_ntop(AF_INET, &a, buf, sizeof buf);
  }
  return buf;
}

address_class classify(const ip_address& a) {
  return a.v6 ? classify6(a.bytes) : classify4(a.v4);
}

std::optional<ip_address> from_sockaddr(const sockaddr* sa) {
  ip_address a;
  if (sa->sa_family == AF_INET) {
    a.v4 = ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr);
    return a;
  }
  if (sa->sa_family == AF_INET6) {
    a.v6 = true;
    std::memcpy(a.bytes.data(), reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr, 16);
    return a;
  }
  return std::nullopt;
}

std::optional<ip_address> parse_ip_literal(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.find(':') == std::string_view::npos) {
    auto v4 = parse_aton(host);
    if (!v4)
      return std::nullopt;
    ip_address a;
    a.v4 = *v4;
    return a;
  }
  std::string text(host.substr(0, host.find('%'))); // the zone picks an interface only
  ip_address a;
  a.v6 = true;
  if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) != 1)
    return std::nullopt;
  return a;
}

std::optional<std::string> refusal(const ip_address& a, bool allow_private) {
  auto c = classify(a);
  if (allow_private || c == address_class::global)
    return std::nullopt;
  return a.to_string() + ", address class " + std::string(describe(c))
         + ", is not public; " + std::string(private_hint);
}

} // namespace sandboxd::webhooks
