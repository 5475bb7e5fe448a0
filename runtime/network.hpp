// Sandbox networking: each sandbox's own network namespace (crun's) gets a
// veth pair to the host, a /30 from a private pool, a default route, NAT, and
// an egress policy enforced by nftables in one table of ours (`inet sandboxd`).
// Sandbox-to-host and sandbox-to-sandbox traffic is always dropped.
//
// nftables layout (shared by every sandboxd on the host; each sandbox only
// ever adds or removes its own elements and its own chain):
//
//   table inet sandboxd {
//     set ifaces  { type ifname }            host-side veth of every sandbox
//     set always_deny { type ipv4_addr }     every server's pool and always_deny
//     map egress  { type ifname : verdict }  veth -> accept, drop or goto sbx_<id>
//     chain forward      new traffic into a sandbox: drop; from a sandbox:
//                        non-IPv4 and always_deny drop, then its chain
//     chain input        from a sandbox to the host: drop (replies to the host pass)
//     chain postrouting  masquerade what leaves a sandbox for anywhere else
//     chain sbx_<id>     a sandbox's policy when it is more than accept/drop
//   }
//
// Before the jump, non-IPv4 and the always-denied ranges (the pools and
// 169.254.0.0/16) are dropped. sbx_<id>, first match wins: allowOut accept; DNS (tcp/udp 53) to the
// nameservers accept when allowOut has domains; then drop everything if
// !internet, else denyOut drop; accept. Every packet is checked, so an update
// also cuts connections that are already open.
//
// Domains in allowOut are resolved (A records) when the policy is applied
// (setup, update) and their addresses go into the allow rule; nothing
// refreshes them later (call update again). `*.domain` cannot be resolved
// ahead of time: it is accepted but opens nothing but DNS by itself.
//
// Links, addresses and routes go through rtnetlink, rules through libnftables,
// both in this process: no `ip` or `nft` is spawned.
// Every call blocks (kernel round trips, ~ms): run it on a worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dns_name.hpp"
#include "core/egress_rules.hpp"
#include "core/inspect.hpp"
#include "core/result.hpp"
#include "runtime/address_view.hpp"

namespace sandboxd {

class egress_proxy;

/// E2B's `allowInternetAccess` and `network{allowOut, denyOut}`, JSON-free.
/// allowInternetAccess=false is denyOut ["0.0.0.0/0"]; allowOut beats denyOut.
struct network_policy {
  bool internet = true;
  /// IPv4 addresses, IPv4 CIDRs, host names (`example.com`) or `*.example.com`.
  std::vector<std::string> allow_out;
  /// IPv4 addresses or IPv4 CIDRs only.
  std::vector<std::string> deny_out;
  /// E2B's network.rules: the sandbox's HTTPS goes through the egress proxy
  /// (runtime/egress_proxy.hpp) when there are any.
  std::vector<egress_rule> rules{};
  /// The org whose secrets the rules' placeholders name.
  std::string org{};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, network_policy& x) {
  return f(caf::meta::type_name("network_policy"), x.internet, x.allow_out, x.deny_out,
           x.rules, x.org);
}

/// 400 with a message naming the bad entry; success otherwise.
status validate(const network_policy& policy);

struct network_config {
  /// Per-sandbox /30s are carved out of this IPv4 range.
  std::string pool = "10.201.0.0/16";
  /// Destinations no policy can open (besides the pool itself): link-local,
  /// where clouds serve instance metadata.
  std::vector<std::string> always_deny = {"169.254.0.0/16"};
  /// Nameservers for sandboxes; empty = the host's non-loopback IPv4 ones
  /// (/etc/resolv.conf, else /run/systemd/resolve/resolv.conf).
  std::vector<std::string> nameservers;
  /// Host-wide lock serializing address allocation between sandboxd processes.
  std::string lock_path = "/run/sandboxd-network.lock";
  /// Serves sandboxes with network.rules; null: such a sandbox is refused.
  std::shared_ptr<egress_proxy> egress;
  /// Domain -> IPv4 addresses (host byte order); empty = getaddrinfo (A records).
  std::function<std::vector<uint32_t>(const std::string&)> resolver;
};

// ---- pure helpers (unit-tested) ---------------------------------------------

struct ipv4_net {
  uint32_t addr = 0; // host byte order, host bits cleared
  int len = 32;
  bool operator==(const ipv4_net& o) const { return addr == o.addr && len == o.len; }
};

/// The IPv4 addresses (host byte order) of `names`, looked up all at once on
/// glibc's own bounded pool of lookup threads (getaddrinfo_a), never a
/// thread per name; a name that does not resolve adds nothing.
std::vector<uint32_t> lookup_ipv4(const std::vector<std::string>& names);

/// "a.b.c.d" or "a.b.c.d/n" (host bits are cleared); strict: no leading zeros.
result<ipv4_net> parse_ipv4_net(const std::string& text);
std::string to_string(const ipv4_net& net);
std::string ipv4_to_string(uint32_t addr);
bool contains(const ipv4_net& net, uint32_t addr);
/// Sorted, with overlapping and adjacent ranges merged into covering CIDRs.
std::vector<ipv4_net> merge_nets(std::vector<ipv4_net> nets);

/// Host-side veth name (15 chars: "sbx" + 12 of the id) and policy chain name.
std::string veth_name(const std::string& sandbox_id);
std::string chain_name(const std::string& sandbox_id);

/// The /30 number `slot` of the pool: network, host (gateway) and sandbox addresses.
struct sandbox_addresses {
  ipv4_net subnet;
  uint32_t host = 0;
  uint32_t sandbox = 0;
};
result<sandbox_addresses> slot_addresses(const ipv4_net& pool, uint32_t slot);
/// Where allocation starts probing for `sandbox_id` (stable across restarts).
uint32_t preferred_slot(const std::string& sandbox_id, uint32_t slots);

/// A policy with its domains resolved: what the rules are made of.
struct resolved_policy {
  bool internet = true;
  std::vector<ipv4_net> always_deny; // pool + config.always_deny
  std::vector<ipv4_net> allow;       // allowOut CIDRs and resolved domains
  std::vector<ipv4_net> deny;        // denyOut (0.0.0.0/0 when !internet)
  std::vector<uint32_t> dns;         // nameservers opened on port 53 (domains in allowOut)
  bool intercept = false;            // network.rules: tcp/443 goes to the egress proxy
};

/// What the rules decide for a packet from the sandbox to `dst` (port 53 or not).
bool permits(const resolved_policy& policy, uint32_t dst, bool dns_port);

/// nft -f text: the shared table, sets, map and base chains with their rules,
/// and `always_deny` added to the shared set. Idempotent; the rules are
/// identical from every sandboxd.
std::string render_skeleton(const std::vector<ipv4_net>& always_deny);
/// The verdict a policy comes down to when it needs no rules of its own:
/// "accept" (no allowOut, no denyOut) or "drop" (deny-all, nothing allowed).
/// Such a sandbox gets a map entry and no chain: the common case adds no
/// chain that later transactions would have to list.
std::optional<std::string> policy_verdict(const resolved_policy& policy);
/// nft -f text, one transaction: the sandbox's set and map entries (a
/// verdict, or a goto to its chain, created and filled here). `fresh`: the
/// sandbox has no entries yet; otherwise its map entry is swapped, and a
/// chain it no longer needs is removed.
std::string render_policy(const std::string& sandbox_id, const resolved_policy& policy,
                          bool fresh);
/// render_skeleton() + render_policy(.., true).
std::string render_apply(const std::string& sandbox_id, const resolved_policy& policy);
/// nft -f text deleting the sandbox's entries and chain; fails if an entry is missing.
std::string render_delete(const std::string& sandbox_id);
/// The removal that works from any state: one transaction per entry (map,
/// set, then `chain` when not empty), each of which may fail as missing.
std::vector<std::string> render_forget(const std::string& veth, const std::string& chain);
/// /etc/resolv.conf for the sandbox: the nameservers `policy` lets it reach.
std::string render_resolv_conf(const resolved_policy& policy,
                               const std::vector<uint32_t>& nameservers);
/// Non-loopback IPv4 nameservers of a resolv.conf text.
std::vector<uint32_t> parse_nameservers(const std::string& resolv_conf);
/// Sandbox ids whose policy chain appears in `nft list table inet sandboxd` output.
std::vector<std::string> chains_in_listing(const std::string& nft_listing);
/// Host-side veth names in the `ifaces` set of that output.
std::vector<std::string> ifaces_in_listing(const std::string& nft_listing);

// ---- the component ------------------------------------------------------------

class sandbox_network {
public:
  explicit sandbox_network(network_config config = {});

  /// nftables, rtnetlink and IPv4 forwarding work; the failure says how to fix it.
  status check_host();

  /// Wires the sandbox whose container init is `init_pid` (its netns is
  /// /proc/<pid>/ns/net): allocates a /30, creates the veth pair, addresses,
  /// default route, NAT and the policy. On failure everything is undone.
  status setup(const std::string& sandbox_id, int init_pid, const network_policy& policy);

  /// Replaces the sandbox's policy atomically (one nft transaction); domains
  /// are resolved again now.
  status update(const std::string& sandbox_id, const network_policy& policy);

  /// Removes the sandbox's veth, chain, set and map entries. Idempotent, and
  /// touches nothing that is not the sandbox's.
  status teardown(const std::string& sandbox_id);

  /// Leftovers: removes the entries and chains of sandboxes whose veth no
  /// longer exists, whichever sandboxd made them. Returns the ids of those
  /// with a chain and the veth names of those without.
  result<std::vector<std::string>> sweep();

  /// Writes <rootfs>/etc/resolv.conf (never following a symlink out of the
  /// rootfs): the nameservers the policy lets the sandbox reach, else none.
  status write_resolv_conf(const std::string& rootfs, const network_policy& policy);

  /// The sandbox's own address, read from its host veth; 404 if none.
  result<std::string> sandbox_address(const std::string& sandbox_id);

  const network_config& config() const { return config_; }

private:
  result<resolved_policy> resolve(const network_policy& policy);
  std::vector<uint32_t> nameservers();
  /// The pool and config.always_deny: what no sandbox may ever reach.
  std::vector<ipv4_net> always_deny() const;
  /// nft -f `fast`, prefixed by the skeleton until one has been applied by
  /// this process; on failure, forgets the sandbox's entries and runs
  /// `then` (a whole transaction, render_apply; empty: nothing more).
  result<std::string> run_nft(const std::string& sandbox_id, const std::string& fast,
                              const std::string& then);
  /// Removes a veth's set and map entries and `chain`, whichever exist.
  status forget(const std::string& veth, const std::string& chain);

  network_config config_;
  ipv4_net pool_;
  std::atomic<bool> skeleton_ready_{false};
  /// The host's IPv4 addresses, for the /30 search without a dump per create.
  address_view addresses_;
};

} // namespace sandboxd
