#include "runtime/network.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <nftables/libnftables.h>
#include <net/if.h>
#include <netdb.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

#include "core/ascii.hpp"
#include "core/fd_closer.hpp"
#include "core/ids.hpp"
#include "runtime/command.hpp"
#include "runtime/egress_proxy.hpp"
#include "runtime/netlink.hpp"
#include "runtime/rootfs_files.hpp"

namespace sandboxd {

namespace {

constexpr const char* table = "inet sandboxd";
constexpr int prefix_len = 30; // per sandbox: network, gateway, sandbox, broadcast
constexpr size_t max_entries = 1024;

std::string read_text(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
    s.pop_back();
  return s;
}

uint32_t mask_of(int len) {
  return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}

// Strict dotted quad: four decimal octets 0-255, no leading zeros, no signs.
bool parse_ipv4(const std::string& s, uint32_t& out) {
  uint32_t addr = 0;
  size_t i = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (i >= s.size() || s[i] != '.')
        return false;
      ++i;
    }
    size_t start = i;
    uint32_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3)
      v = v * 10 + static_cast<uint32_t>(s[i++] - '0');
    size_t digits = i - start;
    if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0'))
      return false;
    addr = (addr << 8) | v;
  }
  if (i != s.size())
    return false;
  out = addr;
  return true;
}


bool all_digits(const std::string& s) {
  return !s.empty()
         && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string set_of(const std::vector<ipv4_net>& nets) {
  std::string s = "{ ";
  for (size_t i = 0; i < nets.size(); ++i)
    s += (i ? ", " : "") + to_string(nets[i]);
  return s + " }";
}

bool in_any(const std::vector<ipv4_net>& nets, uint32_t addr) {
  for (auto& n : nets)
    if (contains(n, addr))
      return true;
  return false;
}

} // namespace

std::string render_skeleton(const std::vector<ipv4_net>& always_deny) {
  std::string t = table;
  std::string s = "add table " + t + "\n"
         "add set " + t + " ifaces { type ifname; }\n"
         // Shared by every sandboxd on the host: each adds its pool and its
         // never-opened ranges (the union is denied to every sandbox).
         "add set " + t + " always_deny { type ipv4_addr; flags interval; auto-merge; }\n"
         "add map " + t + " egress { type ifname : verdict; }\n"
         // Sandboxes whose HTTPS goes through the egress proxy (network.rules).
         "add set " + t + " intercept { type ifname; }\n"
         "add chain " + t + " prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
         "add chain " + t + " forward { type filter hook forward priority filter; policy accept; }\n"
         "add chain " + t + " input { type filter hook input priority filter; policy accept; }\n"
         "add chain " + t + " postrouting { type nat hook postrouting priority srcnat; policy accept; }\n";
  auto always = merge_nets(always_deny);
  if (!always.empty())
    s += "add element " + t + " always_deny " + set_of(always) + "\n";
  return s +
         "flush chain " + t + " forward\n"
         // Nothing new enters a sandbox: not from outside, not from another sandbox.
         "add rule " + t + " forward oifname @ifaces ct state established,related accept\n"
         "add rule " + t + " forward oifname @ifaces drop\n"
         // Out of a sandbox: IPv4 only (it has no IPv6 route), never to the
         // always-denied ranges, then its own policy (a verdict or a chain);
         // a veth without one is dropped. Kept here rather than in each
         // sandbox's chain: anonymous interval sets per sandbox made every
         // nft transaction dump them all (O(sandboxes)).
         "add rule " + t + " forward iifname @ifaces meta nfproto != ipv4 drop\n"
         "add rule " + t + " forward iifname @ifaces ip daddr @always_deny drop\n"
         "add rule " + t + " forward iifname vmap @egress\n"
         "add rule " + t + " forward iifname @ifaces drop\n"
         "flush chain " + t + " input\n"
         // The host accepts replies from sandboxes, nothing they initiate.
         "add rule " + t + " input iifname @ifaces ct state established,related accept\n"
         // ... and the HTTPS redirected to the egress proxy, which listens on
         // the sandbox's own veth address (a direct connection there is dropped).
         "add rule " + t + " input iifname @intercept ct status dnat tcp dport 443 accept\n"
         "add rule " + t + " input iifname @ifaces drop\n"
         "flush chain " + t + " prerouting\n"
         "add rule " + t + " prerouting iifname @intercept tcp dport 443 redirect\n"
         "flush chain " + t + " postrouting\n"
         "add rule " + t + " postrouting iifname @ifaces oifname != @ifaces masquerade\n";
}

namespace {

// flock on a host-wide file: allocation is serialized across sandboxd processes.
class host_lock {
public:
  explicit host_lock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0)
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
  }
  ~host_lock() {
    if (fd_ >= 0)
      ::close(fd_); // releases the lock
  }
  bool ok() const { return fd_ >= 0; }
  host_lock(const host_lock&) = delete;
  host_lock& operator=(const host_lock&) = delete;

private:
  int fd_ = -1;
};

// nft through libnftables in this process: one context, one transaction at
// a time (a context is not thread-safe; the kernel serializes commits anyway).
result<std::string> nft_run(const std::string& text) {
  static std::mutex mtx;
  static nft_ctx* ctx = nullptr;
  std::lock_guard<std::mutex> guard{mtx};
  if (!ctx) {
    ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx)
      return internal_error("libnftables: cannot create a context");
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
  }
  int rc = nft_run_cmd_from_buffer(ctx, text.c_str());
  // Reading a buffer also empties it for the next command.
  auto* out = nft_ctx_get_output_buffer(ctx);
  auto* err = nft_ctx_get_error_buffer(ctx);
  if (rc != 0)
    return internal_error("nft failed: " + (err ? trim(err) : std::string{"no reason given"}));
  return std::string{out ? out : ""};
}

bool link_exists(const std::string& name) {
  return ::if_nametoindex(name.c_str()) != 0;
}

std::string netns_of(const std::string& pid) {
  char buf[64] = {};
  auto n = ::readlink(("/proc/" + pid + "/ns/net").c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

} // namespace

// ---- pure helpers ---------------------------------------------------------------

result<ipv4_net> parse_ipv4_net(const std::string& text) {
  auto slash = text.find('/');
  ipv4_net net;
  if (!parse_ipv4(text.substr(0, slash), net.addr))
    return bad_request("'" + text + "' is not an IPv4 address or CIDR");
  if (slash != std::string::npos) {
    auto len = text.substr(slash + 1);
    if (!all_digits(len) || len.size() > 2 || (len.size() > 1 && len[0] == '0')
        || std::stoi(len) > 32)
      return bad_request("'" + text + "' has an invalid prefix length (0-32)");
    net.len = std::stoi(len);
  }
  net.addr &= mask_of(net.len);
  return net;
}

std::vector<uint32_t> lookup_ipv4(const std::vector<std::string>& names) {
  std::vector<uint32_t> out;
  if (names.empty())
    return out;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  std::vector<gaicb> requests(names.size());
  std::vector<gaicb*> list;
  for (size_t i = 0; i < names.size(); ++i) {
    requests[i].ar_name = names[i].c_str();
    requests[i].ar_request = &hints;
    list.push_back(&requests[i]);
  }
  // GAI_WAIT: returns once every lookup has ended; one that failed adds nothing.
  ::getaddrinfo_a(GAI_WAIT, list.data(), static_cast<int>(list.size()), nullptr);
  for (auto& q : requests) {
    if (::gai_error(&q) != 0)
      continue;
    for (auto* i = q.ar_result; i; i = i->ai_next)
      out.push_back(ntohl(reinterpret_cast<sockaddr_in*>(i->ai_addr)->sin_addr.s_addr));
    ::freeaddrinfo(q.ar_result);
  }
  return out;
}

std::string ipv4_to_string(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "."
         + std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

std::string to_string(const ipv4_net& net) {
  auto s = ipv4_to_string(net.addr);
  return net.len == 32 ? s : s + "/" + std::to_string(net.len);
}

bool contains(const ipv4_net& net, uint32_t addr) {
  return (addr & mask_of(net.len)) == net.addr;
}

std::vector<ipv4_net> merge_nets(std::vector<ipv4_net> nets) {
  // As [first, last+1) ranges, merged, then cut back into aligned CIDRs.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& n : nets)
    ranges.push_back({n.addr, uint64_t{n.addr} + (uint64_t{1} << (32 - n.len))});
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (auto& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, r.second);
    else
      merged.push_back(r);
  }
  std::vector<ipv4_net> out;
  for (auto [lo, hi] : merged) {
    while (lo < hi) {
      int len = 32;
      // The largest aligned block starting at lo that fits in [lo, hi).
      while (len > 0) {
        uint64_t size = uint64_t{1} << (32 - (len - 1));
        if (lo % size != 0 || lo + size > hi)
          break;
        --len;
      }
      out.push_back({static_cast<uint32_t>(lo), len});
      lo += uint64_t{1} << (32 - len);
    }
  }
  return out;
}

std::string veth_name(const std::string& sandbox_id) {
  return "sbx" + sandbox_id.substr(0, 12);
}

std::string chain_name(const std::string& sandbox_id) {
  return "sbx_" + sandbox_id;
}

result<sandbox_addresses> slot_addresses(const ipv4_net& pool, uint32_t slot) {
  if (pool.len > prefix_len)
    return bad_request("the sandbox network pool " + to_string(pool)
                       + " is smaller than one /30");
  uint64_t slots = uint64_t{1} << (prefix_len - pool.len);
  if (slot >= slots)
    return bad_request("slot out of range");
  sandbox_addresses a;
  a.subnet = {pool.addr + (slot << (32 - prefix_len)), prefix_len};
  a.host = a.subnet.addr + 1;
  a.sandbox = a.subnet.addr + 2;
  return a;
}

uint32_t preferred_slot(const std::string& sandbox_id, uint32_t slots) {
  uint32_t h = 2166136261u; // FNV-1a
  for (unsigned char c : sandbox_id)
    h = (h ^ c) * 16777619u;
  return slots ? h % slots : 0;
}

bool permits(const resolved_policy& p, uint32_t dst, bool dns_port) {
  if (in_any(p.always_deny, dst))
    return false;
  if (in_any(p.allow, dst))
    return true;
  if (dns_port && std::find(p.dns.begin(), p.dns.end(), dst) != p.dns.end())
    return true;
  if (!p.internet)
    return false;
  return !in_any(p.deny, dst);
}

namespace {

// nft text removing `chain` whether or not it exists (added first).
std::string drop_chain(const std::string& chain) {
  std::string t = table;
  return "add chain " + t + " " + chain + "\n" + "flush chain " + t + " " + chain + "\n"
         + "delete chain " + t + " " + chain + "\n";
}

} // namespace

std::optional<std::string> policy_verdict(const resolved_policy& p) {
  if (!p.allow.empty() || !p.dns.empty())
    return std::nullopt;
  auto deny = merge_nets(p.deny);
  if (!p.internet || (deny.size() == 1 && deny[0].len == 0))
    return "drop";
  if (deny.empty())
    return "accept";
  return std::nullopt;
}

std::string render_policy(const std::string& id, const resolved_policy& p, bool fresh) {
  std::string t = table;
  auto chain = chain_name(id);
  auto veth = veth_name(id);
  std::string s;
  // An update swaps the sandbox's map entry within the transaction: there
  // is no moment without a policy.
  if (!fresh)
    s += "delete element " + t + " egress { \"" + veth + "\" }\n";
  // In the intercept set or not (added first: deleting a missing one fails).
  if (p.intercept || !fresh)
    s += "add element " + t + " intercept { \"" + veth + "\" }\n";
  if (!p.intercept && !fresh)
    s += "delete element " + t + " intercept { \"" + veth + "\" }\n";
  if (auto verdict = policy_verdict(p)) {
    s += "add element " + t + " ifaces { \"" + veth + "\" }\n";
    s += "add element " + t + " egress { \"" + veth + "\" : " + *verdict + " }\n";
    // The chain an earlier policy may have had (added first: there may be none).
    if (!fresh)
      s += drop_chain(chain);
    return s;
  }
  auto rule = "add rule " + t + " " + chain + " ";
  s += "add chain " + t + " " + chain + "\n";
  s += "flush chain " + t + " " + chain + "\n";
  // Non-IPv4 and the always-denied ranges were dropped before the jump here
  // (render_skeleton).
  auto allow = merge_nets(p.allow);
  if (!allow.empty())
    s += rule + "ip daddr " + set_of(allow) + " accept\n";
  if (!p.dns.empty()) {
    std::vector<ipv4_net> dns;
    for (auto a : p.dns)
      dns.push_back({a, 32});
    s += rule + "ip daddr " + set_of(merge_nets(dns))
         + " meta l4proto { tcp, udp } th dport 53 accept\n";
  }
  auto deny = merge_nets(p.deny);
  bool deny_all = !p.internet || (deny.size() == 1 && deny[0].len == 0);
  if (deny_all)
    s += rule + "drop\n";
  else if (!deny.empty())
    s += rule + "ip daddr " + set_of(deny) + " drop\n";
  if (!deny_all)
    s += rule + "accept\n";
  s += "add element " + t + " ifaces { \"" + veth + "\" }\n";
  s += "add element " + t + " egress { \"" + veth + "\" : goto " + chain + " }\n";
  return s;
}

std::string render_apply(const std::string& id, const resolved_policy& p) {
  return render_skeleton(p.always_deny) + render_policy(id, p, true);
}

std::string render_delete(const std::string& id) {
  std::string t = table;
  auto chain = chain_name(id);
  auto veth = veth_name(id);
  return "delete element " + t + " egress { \"" + veth + "\" }\n"
         + "delete element " + t + " ifaces { \"" + veth + "\" }\n"
         + "add element " + t + " intercept { \"" + veth + "\" }\n"
         + "delete element " + t + " intercept { \"" + veth + "\" }\n" + drop_chain(chain);
}

std::vector<std::string> render_forget(const std::string& veth, const std::string& chain) {
  std::string t = table;
  std::vector<std::string> steps = {
    "delete element " + t + " egress { \"" + veth + "\" }\n",
    "delete element " + t + " ifaces { \"" + veth + "\" }\n",
    "delete element " + t + " intercept { \"" + veth + "\" }\n"};
  if (!chain.empty())
    steps.push_back(drop_chain(chain));
  return steps;
}

std::string render_resolv_conf(const resolved_policy& p, const std::vector<uint32_t>& ns) {
  std::string lines;
  for (auto a : ns)
    if (permits(p, a, true))
      lines += "nameserver " + ipv4_to_string(a) + "\n";
  if (lines.empty())
    return "# Written by sandboxd: this sandbox's network policy reaches no nameserver.\n";
  return "# Written by sandboxd from the host's nameservers.\n" + lines;
}

std::vector<uint32_t> parse_nameservers(const std::string& text) {
  std::vector<uint32_t> out;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words{line};
    std::string key, value;
    words >> key >> value;
    uint32_t a;
    if (key == "nameserver" && parse_ipv4(value, a) && (a >> 24) != 127 && a != 0
        && std::find(out.begin(), out.end(), a) == out.end())
      out.push_back(a);
  }
  return out;
}

std::vector<std::string> chains_in_listing(const std::string& listing) {
  std::vector<std::string> ids;
  std::istringstream in{listing};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words{line};
    std::string key, name;
    words >> key >> name;
    if (key == "chain" && name.compare(0, 4, "sbx_") == 0
        && is_valid_sandbox_id(name.substr(4)))
      ids.push_back(name.substr(4));
  }
  return ids;
}

std::vector<std::string> ifaces_in_listing(const std::string& listing) {
  std::vector<std::string> out;
  auto at = listing.find("set ifaces {");
  if (at == std::string::npos)
    return out;
  auto end = listing.find('}', at + 12);
  for (auto q = listing.find('"', at); q != std::string::npos && q < end;) {
    auto close = listing.find('"', q + 1);
    if (close == std::string::npos || close > end)
      break;
    auto name = listing.substr(q + 1, close - q - 1);
    if (name.size() == 15 && name.compare(0, 3, "sbx") == 0)
      out.push_back(name);
    q = listing.find('"', close + 1);
  }
  return out;
}

status validate(const network_policy& p) {
  if (p.allow_out.size() > max_entries || p.deny_out.size() > max_entries)
    return bad_request("network: at most " + std::to_string(max_entries)
                       + " entries in allowOut and in denyOut");
  for (auto& e : p.allow_out) {
    if (e.find(':') != std::string::npos)
      return bad_request("network.allowOut: '" + e
                         + "': IPv6 and ports are not supported (IPv4 address, CIDR or domain)");
    if (is_domain(e) || is_wildcard_domain(e))
      continue;
    auto n = parse_ipv4_net(e);
    if (!n)
      return bad_request("network.allowOut: '" + e
                         + "' is not an IPv4 address, IPv4 CIDR, domain or *.domain");
  }
  for (auto& e : p.deny_out) {
    if (e.find(':') != std::string::npos)
      return bad_request("network.denyOut: '" + e
                         + "': IPv6 and ports are not supported (IPv4 address or CIDR)");
    if (is_domain(e) || is_wildcard_domain(e))
      return bad_request("network.denyOut: '" + e
                         + "': domains are only allowed in allowOut");
    auto n = parse_ipv4_net(e);
    if (!n)
      return bad_request("network.denyOut: " + n.error().message);
  }
  return success();
}

// ---- the component ------------------------------------------------------------

sandbox_network::sandbox_network(network_config config) : config_(std::move(config)) {
  auto pool = parse_ipv4_net(config_.pool);
  if (pool)
    pool_ = *pool;
  else
    pool_ = {0, 33}; // refused by check_host and setup
}

std::vector<uint32_t> sandbox_network::nameservers() {
  std::vector<uint32_t> out;
  if (!config_.nameservers.empty()) {
    for (auto& s : config_.nameservers) {
      uint32_t a;
      if (parse_ipv4(s, a))
        out.push_back(a);
    }
    return out;
  }
  out = parse_nameservers(read_text("/etc/resolv.conf"));
  if (out.empty()) // systemd-resolved's stub is loopback; its upstreams are here
    out = parse_nameservers(read_text("/run/systemd/resolve/resolv.conf"));
  return out;
}

std::vector<ipv4_net> sandbox_network::always_deny() const {
  std::vector<ipv4_net> out{pool_};
  for (auto& text : config_.always_deny)
    if (auto n = parse_ipv4_net(text))
      out.push_back(*n); // a bad entry is refused by check_host
  return out;
}

result<resolved_policy> sandbox_network::resolve(const network_policy& policy) {
  if (auto v = validate(policy); !v)
    return v.error();
  resolved_policy r;
  r.internet = policy.internet;
  r.intercept = !policy.rules.empty();
  r.always_deny = always_deny();
  std::vector<std::string> domains;
  bool any_domain = false;
  for (auto& e : policy.allow_out) {
    if (is_domain(e))
      domains.push_back(ascii_lower(e));
    if (is_domain(e) || is_wildcard_domain(e)) {
      any_domain = true;
      continue;
    }
    r.allow.push_back(*parse_ipv4_net(e));
  }
  for (auto& e : policy.deny_out)
    r.deny.push_back(*parse_ipv4_net(e));
  if (!policy.internet)
    r.deny = {ipv4_net{0, 0}};
  // Domains: resolved now (A records).
  if (config_.resolver) {
    for (auto& d : domains)
      for (auto a : config_.resolver(d))
        r.allow.push_back({a, 32});
  } else {
    for (auto a : lookup_ipv4(domains))
      r.allow.push_back({a, 32});
  }
  // A domain is only useful if the sandbox can look it up.
  if (any_domain)
    r.dns = nameservers();
  return r;
}

namespace {

// The host side: the veth pair (its peer `eth0` born in the sandbox's
// netns), the gateway address, the alias naming the sandbox, up.
status wire_host_side(const std::string& id, int init_pid, const sandbox_addresses& a, int len) {
  auto nl = rtnetlink::open();
  if (!nl)
    return nl.error();
  auto veth = veth_name(id);
  if (auto r = nl->add_veth(veth, "eth0", init_pid); !r)
    return r;
  // No IPv6 on the host's end (sandboxes have no IPv6 route): otherwise
  // each end adds a link-local address and routes to the host's table,
  // which the kernel walks on every link change: O(sandboxes) per create.
  auto v6 = "/proc/sys/net/ipv6/conf/" + veth + "/disable_ipv6";
  if (fd_closer f{::open(v6.c_str(), O_WRONLY | O_CLOEXEC)}; f.get() >= 0) {
    if (::write(f.get(), "1", 1) != 1)
      return internal_error("disable IPv6 on " + veth + ": " + strerror(errno));
  } else if (errno != ENOENT) // ENOENT: a kernel without IPv6
    return internal_error("open " + v6 + ": " + strerror(errno));
  if (auto r = nl->add_address(veth, a.host, len); !r)
    return r;
  return nl->set_up(veth, "sandboxd:" + id);
}

// The sandbox side, from a socket opened inside its netns: lo and eth0 up,
// the sandbox's address, the default route through the gateway.
status wire_sandbox_side(int init_pid, const sandbox_addresses& a, int len) {
  auto ns = "/proc/" + std::to_string(init_pid) + "/ns/net";
  fd_closer fd{::open(ns.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.get() < 0)
    return internal_error("open " + ns + ": " + strerror(errno));
  auto nl = rtnetlink::open_in(fd.get());
  if (!nl)
    return nl.error();
  if (auto r = nl->set_up("lo"); !r)
    return r;
  if (auto r = nl->add_address("eth0", a.sandbox, len); !r)
    return r;
  if (auto r = nl->set_up("eth0"); !r)
    return r;
  return nl->add_default_route("eth0", a.host);
}

} // namespace

status sandbox_network::forget(const std::string& veth, const std::string& chain) {
  // One transaction per entry: each may be missing, and one missing entry
  // must not keep the others. ENOENT is "already gone".
  for (auto& step : render_forget(veth, chain))
    if (auto r = nft_run(step); !r && r.error().message.find("No such file or directory")
                                          == std::string::npos)
      return failure{r.error().status, "remove the rules of " + veth + ": " + r.error().message};
  return success();
}

result<std::string> sandbox_network::run_nft(const std::string& id, const std::string& fast,
                                             const std::string& then) {
  // Re-adding existing base chains costs a kernel grace period (~15 ms): the
  // skeleton goes in once per process, and again only if something failed.
  bool ready = skeleton_ready_.load();
  auto r = nft_run(ready ? fast : render_skeleton(always_deny()) + fast);
  if (!r) {
    // From whatever state the entries are in: remove them, then `then`.
    if (auto f = forget(veth_name(id), chain_name(id)); !f)
      return f.error();
    r = then.empty() ? result<std::string>{std::string{}} : nft_run(then);
  }
  if (r)
    skeleton_ready_ = true;
  return r;
}

status sandbox_network::check_host() {
  if (pool_.len > prefix_len)
    return bad_request("invalid sandbox network pool '" + config_.pool
                       + "': an IPv4 CIDR of /30 or larger is needed");
  for (auto& s : config_.always_deny)
    if (auto n = parse_ipv4_net(s); !n)
      return bad_request("invalid always-denied network: " + n.error().message);
  if (auto r = nft_run("list tables"); !r)
    return internal_error("nftables is not usable; sandbox networking needs it: "
                          + r.error().message);
  if (auto nl = rtnetlink::open(); !nl)
    return internal_error("rtnetlink is not usable; sandbox networking needs it: "
                          + nl.error().message);
  if (trim(read_text("/proc/sys/net/ipv4/ip_forward")) != "1")
    return internal_error("net.ipv4.ip_forward is off: sandboxes cannot reach anything "
                          "(sysctl -w net.ipv4.ip_forward=1; ops/run does this)");
  return success();
}

status sandbox_network::setup(const std::string& id, int init_pid,
                              const network_policy& policy) {
  if (!is_valid_sandbox_id(id))
    return internal_error("invalid sandbox id " + id);
  if (init_pid <= 0)
    return internal_error("no init pid for sandbox " + id);
  // Never wire the host's own namespace as if it were a sandbox's.
  auto theirs = netns_of(std::to_string(init_pid));
  if (theirs.empty() || theirs == netns_of("self"))
    return internal_error("sandbox " + id + ": process " + std::to_string(init_pid)
                          + " has no network namespace of its own");
  auto resolved = resolve(policy);
  if (!resolved)
    return resolved.error();
  if (pool_.len > prefix_len)
    return internal_error("invalid sandbox network pool " + config_.pool);
  auto fail = [&](const failure& f) -> status {
    auto message = "sandbox network: " + f.message;
    if (auto t = teardown(id); !t)
      message += "; and not cleaned up: " + t.error().message;
    return failure{f.status, message};
  };
  // 1. The veth pair and the gateway address, allocated under the host lock:
  //    a /30 is taken while any host interface has an address in it.
  result<sandbox_addresses> chosen = conflict("the sandbox network pool " + config_.pool
                                              + " is exhausted");
  {
    host_lock lock{config_.lock_path};
    if (!lock.ok())
      return internal_error("cannot open " + config_.lock_path + ": " + strerror(errno));
    if (auto st = addresses_.sync(); !st)
      return st.error();
    uint32_t slots = uint32_t{1} << (prefix_len - pool_.len);
    uint32_t first = preferred_slot(id, slots);
    for (uint32_t i = 0; i < slots; ++i) {
      auto a = slot_addresses(pool_, (first + i) % slots);
      if (!addresses_.any_in(a->subnet.addr, uint64_t{1} << (32 - a->subnet.len))) {
        chosen = *a;
        break;
      }
    }
    if (!chosen)
      return chosen.error();
    if (auto r = wire_host_side(id, init_pid, *chosen, prefix_len); !r)
      return fail(r.error());
  }
  // 2. The rules, then 3. the sandbox side (lo, address, default route):
  //    nothing runs in the sandbox before create returns. The link exists
  //    before its chain does (sweep() relies on that order).
  if (resolved->intercept) {
    if (!config_.egress)
      return fail(bad_request("network.rules need the egress proxy, which this node does not run"));
    if (auto st = config_.egress->attach(id, chosen->host, chosen->sandbox, policy, *resolved); !st)
      return fail(st.error());
  }
  if (auto r = run_nft(id, render_policy(id, *resolved, true), render_apply(id, *resolved)); !r)
    return fail(r.error());
  if (auto r = wire_sandbox_side(init_pid, *chosen, prefix_len); !r)
    return fail(r.error());
  return success();
}

status sandbox_network::update(const std::string& id, const network_policy& policy) {
  if (!is_valid_sandbox_id(id))
    return internal_error("invalid sandbox id " + id);
  auto resolved = resolve(policy);
  if (!resolved)
    return resolved.error();
  if (!link_exists(veth_name(id)))
    return not_found("sandbox " + id + " has no network");
  // The proxy listens before its redirect exists, and stops after it went.
  if (resolved->intercept) {
    if (!config_.egress)
      return bad_request("network.rules need the egress proxy, which this node does not run");
    auto own = sandbox_address(id);
    if (!own)
      return own.error();
    auto addr = parse_ipv4_net(*own);
    if (!addr)
      return addr.error();
    if (auto st = config_.egress->attach(id, addr->addr - 1, addr->addr, policy, *resolved); !st)
      return st;
  }
  // Flush and refill the chain, one transaction: no moment without a policy.
  if (auto r = run_nft(id, render_policy(id, *resolved, false), render_apply(id, *resolved)); !r)
    return failure{r.error().status, "sandbox network: " + r.error().message};
  if (!resolved->intercept && config_.egress)
    config_.egress->detach(id);
  return success();
}

status sandbox_network::teardown(const std::string& id) {
  if (!is_valid_sandbox_id(id))
    return internal_error("invalid sandbox id " + id);
  auto veth = veth_name(id);
  // Deleting our end removes the pair; it is gone already if the netns is.
  // The rules go whether or not the link did.
  status link = success();
  if (link_exists(veth)) {
    auto nl = rtnetlink::open();
    if (!nl)
      link = nl.error();
    else if (auto r = nl->delete_link(veth); !r && r.error().status != 404)
      link = r;
  }
  auto rules = run_nft(id, render_delete(id), "");
  if (config_.egress)
    config_.egress->detach(id);
  if (!link)
    return link;
  if (!rules)
    return failure{rules.error().status, "sandbox network: " + rules.error().message};
  return success();
}

result<std::vector<std::string>> sandbox_network::sweep() {
  // Entries first, links second: setup makes the link before its entries,
  // so an entry seen here whose link is missing below is not being set up.
  std::vector<std::string> stale;
  auto tables = nft_run("list tables inet");
  if (!tables)
    return tables.error();
  if (tables->find("table inet sandboxd\n") == std::string::npos)
    return stale; // no table: nothing of ours
  auto out = nft_run("list table inet sandboxd");
  if (!out)
    return out.error();
  std::set<std::string> swept_veths;
  for (auto& id : chains_in_listing(*out)) {
    auto veth = veth_name(id);
    if (link_exists(veth))
      continue;
    if (auto f = forget(veth, chain_name(id)); !f)
      return f.error();
    swept_veths.insert(veth);
    stale.push_back(id);
  }
  // Sandboxes whose policy is a plain verdict have no chain, only entries.
  for (auto& veth : ifaces_in_listing(*out)) {
    if (swept_veths.count(veth) || link_exists(veth))
      continue;
    if (auto f = forget(veth, ""); !f)
      return f.error();
    stale.push_back(veth);
  }
  return stale;
}

status sandbox_network::write_resolv_conf(const std::string& rootfs,
                                          const network_policy& policy) {
  // Only policy.internet, allowOut/denyOut addresses and whether domains are
  // present matter here: skip resolving domains.
  network_policy shallow = policy;
  bool had_domain = false;
  shallow.allow_out.clear();
  for (auto& e : policy.allow_out) {
    if (is_domain(e) || is_wildcard_domain(e))
      had_domain = true;
    else
      shallow.allow_out.push_back(e);
  }
  auto resolved = resolve(shallow);
  if (!resolved)
    return resolved.error();
  auto ns = nameservers();
  if (had_domain)
    resolved->dns = ns;
  auto text = render_resolv_conf(*resolved, ns);

  return write_in_rootfs(rootfs, "etc", "resolv.conf", text);
}

result<std::string> sandbox_network::sandbox_address(const std::string& id) {
  auto index = ::if_nametoindex(veth_name(id).c_str());
  if (index == 0)
    return not_found("sandbox " + id + " has no network");
  if (auto st = addresses_.sync(); !st)
    return st.error();
  if (auto addr = addresses_.address_on(static_cast<int>(index)))
    return ipv4_to_string(*addr + 1); // the gateway's neighbour in the /30
  return not_found("sandbox " + id + " has no network");
}

} // namespace sandboxd
