// runtime/network: validation and rule rendering (pure), then the real thing
// as root against network namespaces the test makes itself: fake sandboxes
// (`unshare -n sleep`) and an "internet" stand-in (a netns serving HTTP on an
// address outside the sandbox pool). Everything made is removed, even when an
// assertion fails; nothing else is touched.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/ids.hpp"
#include "runtime/command.hpp"
#include "runtime/network.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace sandboxd;

namespace {

uint32_t ip(const std::string& s) {
  auto n = parse_ipv4_net(s);
  EXPECT_TRUE(n.ok()) << s;
  return n ? n->addr : 0;
}

ipv4_net net(const std::string& s) {
  auto n = parse_ipv4_net(s);
  EXPECT_TRUE(n.ok()) << s;
  return n ? *n : ipv4_net{};
}

std::string error_of(const status& s) {
  return s ? "" : s.error().message;
}

} // namespace

// ---- validation -------------------------------------------------------------------

TEST(NetworkPolicy, DefaultsToInternetAndValidates) {
  network_policy p;
  EXPECT_TRUE(p.internet);
  EXPECT_TRUE(validate(p).ok());
  p.allow_out = {"1.1.1.1", "8.8.8.0/24", "example.com", "*.example.org", "Sub.Example.COM"};
  p.deny_out = {"0.0.0.0/0", "10.0.0.0/8", "192.0.2.7"};
  EXPECT_TRUE(validate(p).ok()) << error_of(validate(p));
}

TEST(NetworkPolicy, RefusesBadEntriesWithClearMessages) {
  auto check = [](network_policy p, const std::string& needle) {
    auto s = validate(p);
    ASSERT_FALSE(s.ok()) << needle;
    EXPECT_EQ(s.error().status, 400);
    EXPECT_NE(s.error().message.find(needle), std::string::npos) << s.error().message;
  };
  check({true, {}, {"example.com"}}, "domains are only allowed in allowOut");
  check({true, {}, {"*.example.com"}}, "domains are only allowed in allowOut");
  check({true, {}, {"10.0.0.0/33"}}, "invalid prefix length");
  check({true, {}, {"256.1.1.1"}}, "not an IPv4 address");
  check({true, {}, {"01.2.3.4"}}, "not an IPv4 address");
  check({true, {}, {"::/0"}}, "IPv6");
  check({true, {"1.2.3.4:80"}, {}}, "ports are not supported");
  check({true, {"1.2.3"}, {}}, "'1.2.3' is not an IPv4 address, IPv4 CIDR, domain");
  check({true, {"*"}, {}}, "'*' is not");
  check({true, {"*.com.*"}, {}}, "is not");
  check({true, {"exa mple.com"}, {}}, "is not");
  check({true, {"-bad.com"}, {}}, "is not");
  check({true, {"localhost"}, {}}, "is not"); // a domain needs a dot
  check({true, {""}, {}}, "is not");
  network_policy many;
  many.deny_out.assign(1025, "1.2.3.4");
  check(many, "at most 1024");
}

TEST(NetworkPolicy, LooksUpNamesTogetherAndSkipsWhatDoesNotResolve) {
  // /etc/hosts answers for localhost; .invalid never resolves (RFC 6761).
  auto found = lookup_ipv4({"localhost", "no-such-host.invalid", "localhost"});
  EXPECT_EQ(found, (std::vector<uint32_t>{0x7f000001, 0x7f000001}));
  EXPECT_TRUE(lookup_ipv4({}).empty());
}

TEST(NetworkPolicy, ParsesStrictIPv4) {
  EXPECT_EQ(to_string(net("10.1.2.3/8")), "10.0.0.0/8"); // host bits cleared
  EXPECT_EQ(to_string(net("0.0.0.0/0")), "0.0.0.0/0");
  EXPECT_EQ(to_string(net("192.0.2.7")), "192.0.2.7");
  EXPECT_EQ(to_string(net("192.0.2.7/32")), "192.0.2.7");
  for (auto bad : {"1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/08", "1.2.3.4.5", " 1.2.3.4",
                   "1.2.3.4 ", "1..2.3", "1.2.3.1000", "a.b.c.d"})
    EXPECT_FALSE(parse_ipv4_net(bad).ok()) << bad;
  EXPECT_TRUE(is_domain("a.b"));
  EXPECT_FALSE(is_domain("1.2.3.4"));
  EXPECT_FALSE(is_domain("example.123"));
  EXPECT_TRUE(is_wildcard_domain("*.example.com"));
  EXPECT_FALSE(is_wildcard_domain("*example.com"));
  EXPECT_FALSE(is_wildcard_domain("a.*.example.com"));
}

TEST(NetworkPolicy, MergesOverlappingAndAdjacentRanges) {
  auto m = merge_nets({net("10.1.0.0/16"), net("10.0.0.0/8"), net("1.2.3.4"),
                       net("1.2.3.5"), net("1.2.3.6/31")});
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(to_string(m[0]), "1.2.3.4/30");
  EXPECT_EQ(to_string(m[1]), "10.0.0.0/8");
  m = merge_nets({net("1.2.3.5"), net("1.2.3.6")}); // adjacent, not alignable as one
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(to_string(m[0]), "1.2.3.5");
  EXPECT_EQ(to_string(m[1]), "1.2.3.6");
  m = merge_nets({net("0.0.0.0/1"), net("128.0.0.0/1")});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(to_string(m[0]), "0.0.0.0/0");
  EXPECT_TRUE(merge_nets({}).empty());
}

// ---- what the rules decide, and how they are written -------------------------------

TEST(NetworkRules, AllowBeatsDenyAndAlwaysDenyBeatsAll) {
  resolved_policy p;
  p.always_deny = {net("10.201.0.0/16"), net("169.254.0.0/16")};
  EXPECT_TRUE(permits(p, ip("198.51.100.1"), false));
  EXPECT_FALSE(permits(p, ip("10.201.0.6"), false)); // another sandbox
  EXPECT_FALSE(permits(p, ip("169.254.169.254"), false));
  p.deny = {net("198.51.100.0/24")};
  EXPECT_FALSE(permits(p, ip("198.51.100.1"), false));
  EXPECT_TRUE(permits(p, ip("198.51.101.1"), false));
  p.allow = {net("198.51.100.1"), net("10.201.0.6"), net("169.254.169.254")};
  EXPECT_TRUE(permits(p, ip("198.51.100.1"), false));
  EXPECT_FALSE(permits(p, ip("198.51.100.2"), false));
  EXPECT_FALSE(permits(p, ip("10.201.0.6"), false));      // never opened by allowOut
  EXPECT_FALSE(permits(p, ip("169.254.169.254"), false)); // never opened by allowOut
  p.internet = false;
  EXPECT_TRUE(permits(p, ip("198.51.100.1"), false));
  EXPECT_FALSE(permits(p, ip("203.0.113.9"), false));
  p.dns = {ip("203.0.113.53")};
  EXPECT_TRUE(permits(p, ip("203.0.113.53"), true));
  EXPECT_FALSE(permits(p, ip("203.0.113.53"), false));
}

TEST(NetworkRules, RendersTheSandboxChainAsOneTransaction) {
  std::string id = "abcdefghij0123456789";
  EXPECT_EQ(veth_name(id), "sbxabcdefghij01");
  EXPECT_LE(veth_name(id).size(), 15u);
  EXPECT_EQ(chain_name(id), "sbx_abcdefghij0123456789");
  resolved_policy p;
  p.always_deny = {net("10.201.0.0/16"), net("169.254.0.0/16")};
  p.allow = {net("198.51.100.7"), net("198.51.100.0/24")};
  p.deny = {net("0.0.0.0/0")};
  p.dns = {ip("203.0.113.53")};
  auto text = render_apply(id, p);
  auto has = [&](const std::string& line) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << "missing: " << line << "\n" << text;
  };
  has("add table inet sandboxd");
  has("add chain inet sandboxd forward { type filter hook forward priority filter; policy accept; }");
  has("add rule inet sandboxd forward oifname @ifaces ct state established,related accept");
  has("add rule inet sandboxd forward oifname @ifaces drop");
  has("add rule inet sandboxd forward iifname vmap @egress");
  has("add rule inet sandboxd forward iifname @ifaces meta nfproto != ipv4 drop");
  has("add rule inet sandboxd forward iifname @ifaces ip daddr @always_deny drop");
  has("add element inet sandboxd always_deny { 10.201.0.0/16, 169.254.0.0/16 }");
  // Both before the sandbox's own policy, which no allowOut can get around.
  EXPECT_LT(text.find("ip daddr @always_deny drop"), text.find("vmap @egress"));
  EXPECT_LT(text.find("nfproto != ipv4 drop"), text.find("vmap @egress"));
  has("add rule inet sandboxd input iifname @ifaces drop");
  has("add rule inet sandboxd postrouting iifname @ifaces oifname != @ifaces masquerade");
  has("flush chain inet sandboxd sbx_" + id);
  auto rule = "add rule inet sandboxd sbx_" + id + " ";
  // No anonymous interval set per sandbox for what every sandbox shares.
  EXPECT_EQ(text.find(rule + "ip daddr { 10.201.0.0/16"), std::string::npos) << text;
  has(rule + "ip daddr { 198.51.100.0/24 } accept");
  has(rule + "ip daddr { 203.0.113.53 } meta l4proto { tcp, udp } th dport 53 accept");
  has(rule + "drop");
  EXPECT_EQ(text.find(rule + "accept\n"), std::string::npos) << "deny-all ends with drop";
  has("add element inet sandboxd ifaces { \"sbxabcdefghij01\" }");
  has("add element inet sandboxd egress { \"sbxabcdefghij01\" : goto sbx_" + id + " }");
  // Order: allow, then deny.
  EXPECT_LT(text.find("198.51.100.0/24 } accept"), text.find(rule + "drop"));

  resolved_policy open;
  open.deny = {net("192.0.2.0/24"), net("192.0.2.9")};
  text = render_apply(id, open);
  has(rule + "ip daddr { 192.0.2.0/24 } drop");
  has(rule + "accept");
  EXPECT_EQ(text.find("dport 53"), std::string::npos);
}

TEST(NetworkRules, PlainPoliciesAreAVerdictWithoutAChain) {
  std::string id = "abcdefghij0123456789";
  std::string entry = "egress { \"sbxabcdefghij01\" : ";
  resolved_policy open;
  EXPECT_EQ(policy_verdict(open), std::optional<std::string>{"accept"});
  auto fresh = render_policy(id, open, true);
  EXPECT_NE(fresh.find(entry + "accept }"), std::string::npos) << fresh;
  EXPECT_NE(fresh.find("add element inet sandboxd ifaces { \"sbxabcdefghij01\" }"),
            std::string::npos);
  EXPECT_EQ(fresh.find("chain"), std::string::npos) << fresh;
  EXPECT_EQ(fresh.find("delete"), std::string::npos) << fresh;
  resolved_policy closed;
  closed.internet = false;
  EXPECT_EQ(policy_verdict(closed), std::optional<std::string>{"drop"});
  closed.internet = true;
  closed.deny = {net("0.0.0.0/0")};
  EXPECT_EQ(policy_verdict(closed), std::optional<std::string>{"drop"});
  closed.allow = {net("198.51.100.7")};
  EXPECT_EQ(policy_verdict(closed), std::nullopt);
  resolved_policy some;
  some.deny = {net("192.0.2.0/24")};
  EXPECT_EQ(policy_verdict(some), std::nullopt);
  resolved_policy dns;
  dns.dns = {ip("203.0.113.53")};
  EXPECT_EQ(policy_verdict(dns), std::nullopt);
}

TEST(NetworkRules, UpdatesSwapTheMapEntryInOneTransaction) {
  std::string id = "abcdefghij0123456789";
  auto del = std::string{"delete element inet sandboxd egress { \"sbxabcdefghij01\" }\n"};
  // To a chain: the old entry goes first, then the chain is (re)filled.
  resolved_policy some;
  some.deny = {net("192.0.2.0/24")};
  auto to_chain = render_policy(id, some, false);
  EXPECT_EQ(to_chain.rfind(del, 0), 0u) << to_chain;
  EXPECT_LT(to_chain.find("flush chain inet sandboxd sbx_" + id),
            to_chain.find("goto sbx_" + id));
  EXPECT_EQ(to_chain.find("add table"), std::string::npos) << to_chain;
  // To a verdict: the chain an earlier policy had is removed after the swap.
  auto to_verdict = render_policy(id, resolved_policy{}, false);
  EXPECT_EQ(to_verdict.rfind(del, 0), 0u) << to_verdict;
  EXPECT_LT(to_verdict.find(": accept }"), to_verdict.find("delete chain inet sandboxd sbx_" + id));
  EXPECT_EQ(render_apply(id, some), render_skeleton(some.always_deny) + render_policy(id, some, true));
  EXPECT_EQ(render_skeleton({}).find("sbx_"), std::string::npos);
  EXPECT_EQ(render_skeleton({}).find("add element"), std::string::npos);
}

TEST(NetworkRules, RemovalTouchesOnlyTheSandboxsEntries) {
  std::string id = "abcdefghij0123456789";
  EXPECT_EQ(render_delete(id),
            "delete element inet sandboxd egress { \"sbxabcdefghij01\" }\n"
            "delete element inet sandboxd ifaces { \"sbxabcdefghij01\" }\n"
            "add element inet sandboxd intercept { \"sbxabcdefghij01\" }\n"
            "delete element inet sandboxd intercept { \"sbxabcdefghij01\" }\n"
            "add chain inet sandboxd sbx_abcdefghij0123456789\n"
            "flush chain inet sandboxd sbx_abcdefghij0123456789\n"
            "delete chain inet sandboxd sbx_abcdefghij0123456789\n");
  auto steps = render_forget(veth_name(id), chain_name(id));
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0], "delete element inet sandboxd egress { \"sbxabcdefghij01\" }\n");
  EXPECT_EQ(steps[1], "delete element inet sandboxd ifaces { \"sbxabcdefghij01\" }\n");
  EXPECT_EQ(steps[2], "delete element inet sandboxd intercept { \"sbxabcdefghij01\" }\n");
  EXPECT_NE(steps[3].find("delete chain inet sandboxd sbx_" + id), std::string::npos);
  EXPECT_EQ(render_forget(veth_name(id), "").size(), 3u);
  for (auto& text : steps) {
    EXPECT_EQ(text.find("delete table"), std::string::npos);
    EXPECT_EQ(text.find("flush table"), std::string::npos);
    EXPECT_EQ(text.find("flush ruleset"), std::string::npos);
  }
}

TEST(NetworkRules, LinksAndAddresses) {
  auto pool = net("10.201.0.0/16");
  auto a = slot_addresses(pool, 0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(to_string(a->subnet), "10.201.0.0/30");
  EXPECT_EQ(ipv4_to_string(a->host), "10.201.0.1");
  EXPECT_EQ(ipv4_to_string(a->sandbox), "10.201.0.2");
  a = slot_addresses(pool, 16383);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(ipv4_to_string(a->sandbox), "10.201.255.254");
  EXPECT_FALSE(slot_addresses(pool, 16384).ok());
  EXPECT_FALSE(slot_addresses(net("10.0.0.0/31"), 0).ok());
  EXPECT_EQ(preferred_slot("abcdefghij0123456789", 16384),
            preferred_slot("abcdefghij0123456789", 16384));
  EXPECT_LT(preferred_slot("zzzz", 7), 7u);

}

TEST(NetworkRules, ResolvConfAndNameservers) {
  auto ns = parse_nameservers("# c\nnameserver 127.0.0.53\nnameserver 10.255.255.53\n"
                              "nameserver ::1\nsearch x\nnameserver 192.0.2.53 \n"
                              "nameserver 10.255.255.53\n");
  ASSERT_EQ(ns.size(), 2u);
  EXPECT_EQ(ipv4_to_string(ns[0]), "10.255.255.53");
  EXPECT_EQ(ipv4_to_string(ns[1]), "192.0.2.53");
  resolved_policy p;
  EXPECT_EQ(render_resolv_conf(p, ns),
            "# Written by sandboxd from the host's nameservers.\n"
            "nameserver 10.255.255.53\nnameserver 192.0.2.53\n");
  p.deny = {net("192.0.2.0/24")};
  EXPECT_EQ(render_resolv_conf(p, ns).find("192.0.2.53"), std::string::npos);
  p.internet = false;
  EXPECT_EQ(render_resolv_conf(p, ns).find("nameserver "), std::string::npos);
  p.dns = ns; // domains in allowOut open DNS
  EXPECT_NE(render_resolv_conf(p, ns).find("nameserver 192.0.2.53"), std::string::npos);
}

TEST(NetworkRules, FindsOurChainsInAListing) {
  auto ids = chains_in_listing(
    "table inet sandboxd {\n\tchain forward {\n\t}\n"
    "\tchain sbx_abcdefghij0123456789 {\n\t\taccept\n\t}\n"
    "\tchain sbx_short {\n\t}\n\tchain sbx_zzzzzzzzzzzzzzzzzzzz {\n\t}\n}\n");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], "abcdefghij0123456789");
  EXPECT_EQ(ids[1], "zzzzzzzzzzzzzzzzzzzz");
  auto veths = ifaces_in_listing(
    "table inet sandboxd {\n\tset ifaces {\n\t\ttype ifname\n"
    "\t\telements = { \"sbxabcdefghij01\", \"other\",\n\t\t\t     \"sbxzzzzzzzzzzzz\" }\n\t}\n"
    "\tmap egress {\n\t\telements = { \"sbxnotinthesetx\" : accept }\n\t}\n}\n");
  EXPECT_EQ(veths, (std::vector<std::string>{"sbxabcdefghij01", "sbxzzzzzzzzzzzz"}));
  EXPECT_TRUE(ifaces_in_listing("table inet sandboxd {\n}\n").empty());
}

TEST(NetworkResolvConf, WritesInsideTheRootfsOnly) {
  auto dir = fs::temp_directory_path() / ("sbxnet-" + random_hex(6));
  fs::create_directories(dir / "rootfs/etc");
  struct cleanup {
    fs::path d;
    ~cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } guard{dir};
  network_config cfg;
  cfg.nameservers = {"192.0.2.53"};
  sandbox_network n{cfg};
  auto read = [](const fs::path& p) {
    std::ifstream in{p};
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  ASSERT_TRUE(n.write_resolv_conf((dir / "rootfs").string(), {}).ok());
  EXPECT_NE(read(dir / "rootfs/etc/resolv.conf").find("nameserver 192.0.2.53\n"), std::string::npos);
  // A symlink planted by the sandbox is replaced, never followed.
  std::ofstream{dir / "victim"} << "untouched";
  fs::remove(dir / "rootfs/etc/resolv.conf");
  fs::create_symlink(dir / "victim", dir / "rootfs/etc/resolv.conf");
  ASSERT_TRUE(n.write_resolv_conf((dir / "rootfs").string(), {false, {}, {}}).ok());
  EXPECT_EQ(read(dir / "victim"), "untouched");
  EXPECT_FALSE(fs::is_symlink(dir / "rootfs/etc/resolv.conf"));
  EXPECT_EQ(read(dir / "rootfs/etc/resolv.conf").find("nameserver "), std::string::npos);
  // An absolute symlink for /etc resolves inside the rootfs, not on the host.
  fs::remove_all(dir / "rootfs/etc");
  fs::create_directories(dir / "rootfs/real-etc");
  fs::create_directories(dir / "hostetc");
  fs::create_symlink("/real-etc", dir / "rootfs/etc");
  ASSERT_TRUE(n.write_resolv_conf((dir / "rootfs").string(), {}).ok());
  EXPECT_TRUE(fs::exists(dir / "rootfs/real-etc/resolv.conf"));
  EXPECT_FALSE(n.write_resolv_conf((dir / "nonexistent").string(), {}).ok());
  EXPECT_FALSE(n.write_resolv_conf((dir / "rootfs").string(), {true, {}, {"x.com"}}).ok());
}

// ---- live: real namespaces, veths and nftables (root only) ---------------------------

namespace {

bool have(const std::string& tool, const std::string& arg) {
  auto out = run_command({tool, arg}, std::chrono::seconds(10));
  return out && out->exit_code == 0;
}

std::string sh(const std::vector<std::string>& argv, int* code = nullptr) {
  auto out = run_command(argv, std::chrono::seconds(20));
  if (code)
    *code = out ? out->exit_code : -1;
  return out ? out->output : out.error().message;
}

bool link_exists(const std::string& name) {
  return if_nametoindex(name.c_str()) != 0;
}

std::string nft_table() {
  return sh({"nft", "list", "table", "inet", "sandboxd"});
}

// A background process, killed and reaped when it goes out of scope, and
// killed by the kernel if the test process dies first (setpriv --pdeathsig).
class bg {
public:
  explicit bg(const std::vector<std::string>& command) {
    std::vector<std::string> argv{"setpriv", "--pdeathsig", "KILL", "--"};
    argv.insert(argv.end(), command.begin(), command.end());
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~bg() { stop(); }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  pid_t pid() const { return pid_; }
  bg(const bg&) = delete;
  bg& operator=(const bg&) = delete;

private:
  pid_t pid_ = -1;
};

std::string ns_of(pid_t pid) {
  char buf[64] = {};
  auto p = "/proc/" + std::to_string(pid) + "/ns/net";
  auto n = ::readlink(p.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// A process in a network namespace of its own: what crun gives a sandbox.
struct fake_sandbox {
  std::string id = new_sandbox_id();
  bg proc{{"unshare", "-n", "sleep", "300"}};
  bool ready() {
    auto self = ns_of(::getpid());
    for (int i = 0; i < 200; ++i) {
      auto mine = ns_of(proc.pid());
      if (!mine.empty() && mine != self)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  std::vector<std::string> in(std::vector<std::string> argv) const {
    std::vector<std::string> v{"nsenter", "--net=/proc/" + std::to_string(proc.pid()) + "/ns/net"};
    v.insert(v.end(), argv.begin(), argv.end());
    return v;
  }
};

class NetworkLive : public ::testing::Test {
protected:
  void SetUp() override {
    if (::geteuid() != 0)
      GTEST_SKIP() << "needs root (network namespaces, veths, nftables)";
    for (auto [tool, arg] : {std::pair{"nft", "--version"}, std::pair{"ip", "-V"},
                             std::pair{"setpriv", "--version"},
                             std::pair{"unshare", "--version"}, std::pair{"nsenter", "--version"},
                             std::pair{"curl", "--version"}, std::pair{"python3", "--version"}})
      if (!have(tool, arg))
        GTEST_SKIP() << tool << " is not installed";
    std::ifstream fwd{"/proc/sys/net/ipv4/ip_forward"};
    char c = '0';
    fwd >> c;
    if (c != '1')
      GTEST_SKIP() << "net.ipv4.ip_forward is off (ops/lib.sh prepare_host turns it on)";

    tag_ = random_hex(3);
    work_ = fs::temp_directory_path() / ("sbxnet-" + tag_);
    fs::create_directories(work_);
    // A pool and an "internet" subnet of our own, clear of every host address.
    std::mt19937 rng{std::random_device{}()};
    auto hosts = host_addrs();
    for (int tries = 0; tries < 100; ++tries) {
      auto p = "10.209." + std::to_string(rng() % 256) + ".0/27";
      auto i = "198.18." + std::to_string(rng() % 256) + ".0/30";
      bool clash = false;
      for (auto h : hosts)
        clash = clash || contains(net(p), h) || contains(net(i), h);
      if (!clash) {
        pool_ = p;
        inet_ = net(i);
        break;
      }
    }
    ASSERT_FALSE(pool_.empty());
    inet_host_ = ipv4_to_string(inet_.addr + 1);
    inet_addr_ = ipv4_to_string(inet_.addr + 2);
    netns_ = "sbxtest-" + tag_;
    hveth_ = "sbt" + tag_ + "h";
    int code = 0;
    for (auto cmd : std::vector<std::vector<std::string>>{
           {"ip", "netns", "add", netns_},
           {"ip", "link", "add", hveth_, "type", "veth", "peer", "name", "eth0", "netns", netns_},
           {"ip", "addr", "add", inet_host_ + "/30", "dev", hveth_},
           {"ip", "link", "set", hveth_, "up"},
           {"ip", "-n", netns_, "link", "set", "lo", "up"},
           {"ip", "-n", netns_, "addr", "add", inet_addr_ + "/30", "dev", "eth0"},
           {"ip", "-n", netns_, "link", "set", "eth0", "up"}}) {
      auto out = sh(cmd, &code);
      ASSERT_EQ(code, 0) << out;
    }
    made_netns_ = true;
    web_ = std::make_unique<bg>(std::vector<std::string>{
      "ip", "netns", "exec", netns_, "python3", "-m", "http.server", "8080", "--bind", inet_addr_,
      "--directory", work_.string()});
    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) {
      up = get(sh_host(), "http://" + inet_addr_ + ":8080/") == "200";
      if (!up)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(up) << "the internet stand-in does not answer";
  }

  void TearDown() override {
    for (auto& s : sandboxes_) {
      if (net_) {
        EXPECT_TRUE(net_->teardown(s->id));
      }
      s->proc.stop();
    }
    // Our pool went into the host's shared always_deny set: take it out.
    if (net_ && !pool_.empty())
      sh({"nft", "delete", "element", "inet", "sandboxd", "always_deny", "{", pool_, "}"});
    web_.reset();
    if (made_netns_) {
      sh({"ip", "link", "del", hveth_});
      sh({"ip", "netns", "del", netns_});
    }
    if (!work_.empty()) {
      std::error_code ec;
      fs::remove_all(work_, ec);
    }
  }

  static std::vector<uint32_t> host_addrs() {
    std::vector<uint32_t> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0)
      return out;
    for (auto* i = list; i; i = i->ifa_next)
      if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
        out.push_back(ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr));
    freeifaddrs(list);
    return out;
  }

  sandbox_network& network() {
    if (!net_) {
      network_config cfg;
      cfg.pool = pool_;
      cfg.nameservers = {"192.0.2.53"};
      auto target = inet_addr_;
      cfg.resolver = [target](const std::string& d) {
        return d == "internet.test" ? std::vector<uint32_t>{ip(target)} : std::vector<uint32_t>{};
      };
      net_ = std::make_unique<sandbox_network>(cfg);
    }
    return *net_;
  }

  fake_sandbox& make() {
    sandboxes_.push_back(std::make_unique<fake_sandbox>());
    auto& s = *sandboxes_.back();
    EXPECT_TRUE(s.ready());
    return s;
  }

  fake_sandbox& make(const network_policy& policy) {
    auto& s = make();
    auto st = network().setup(s.id, s.proc.pid(), policy);
    EXPECT_TRUE(st.ok()) << error_of(st);
    return s;
  }

  static std::vector<std::string> sh_host() { return {}; }

  // HTTP status of GET url, from the host (prefix {}) or inside a sandbox.
  static std::string get(std::vector<std::string> prefix, const std::string& url) {
    prefix.insert(prefix.end(), {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                 "--connect-timeout", "1", "-m", "3", url});
    return sh(prefix);
  }
  std::string from(const fake_sandbox& s, const std::string& url) {
    return get(s.in({}), url);
  }
  std::string internet() const { return "http://" + inet_addr_ + ":8080/"; }

  std::string tag_, pool_, netns_, hveth_, inet_host_, inet_addr_;
  ipv4_net inet_;
  fs::path work_;
  bool made_netns_ = false;
  std::unique_ptr<bg> web_;
  std::unique_ptr<sandbox_network> net_;
  std::vector<std::unique_ptr<fake_sandbox>> sandboxes_;
};

} // namespace

TEST_F(NetworkLive, DefaultPolicyReachesTheInternet) {
  auto& s = make({});
  auto addr = network().sandbox_address(s.id);
  ASSERT_TRUE(addr.ok());
  EXPECT_TRUE(contains(net(pool_), ip(*addr)));
  // The stand-in has no route to the pool: an answer proves the masquerade.
  EXPECT_EQ(from(s, internet()), "200");
  // A verdict in the map, no chain: nothing later transactions must list.
  EXPECT_NE(nft_table().find("\"" + veth_name(s.id) + "\" : accept"), std::string::npos);
  EXPECT_EQ(nft_table().find("chain sbx_" + s.id), std::string::npos);
  // The host's end has no IPv6: nothing of it in the host's IPv6 table,
  // which the kernel walks on every link change.
  std::ifstream v6{"/proc/sys/net/ipv6/conf/" + veth_name(s.id) + "/disable_ipv6"};
  std::string disabled;
  if (v6 >> disabled) {
    EXPECT_EQ(disabled, "1");
  }
}

TEST_F(NetworkLive, DenyOutBlocksAndAllowOutBeatsDenyOut) {
  auto& denied = make({true, {}, {inet_addr_}});
  auto& denied_net = make({true, {}, {ipv4_to_string(inet_.addr) + "/30"}});
  auto& offline = make({false, {}, {}});
  auto& allowed = make({true, {inet_addr_}, {"0.0.0.0/0"}});
  auto& offline_allowed = make({false, {ipv4_to_string(inet_.addr) + "/24"}, {}});
  auto& by_name = make({true, {"internet.test"}, {"0.0.0.0/0"}});
  auto& wildcard = make({true, {"*.internet.test"}, {"0.0.0.0/0"}});
  EXPECT_NE(from(denied, internet()), "200");
  EXPECT_NE(from(denied_net, internet()), "200");
  EXPECT_NE(from(offline, internet()), "200");
  EXPECT_EQ(from(allowed, internet()), "200");
  EXPECT_EQ(from(offline_allowed, internet()), "200");
  EXPECT_EQ(from(by_name, internet()), "200");
  // A wildcard cannot be resolved ahead of time: it opens nothing by itself.
  EXPECT_NE(from(wildcard, internet()), "200");
  // Domains open DNS (port 53 only) to the nameservers.
  auto table = nft_table();
  auto chain = table.find("chain sbx_" + by_name.id);
  ASSERT_NE(chain, std::string::npos);
  EXPECT_NE(table.find("ip daddr 192.0.2.53 meta l4proto { tcp, udp } th dport 53 accept", chain),
            std::string::npos) << table;
}

TEST_F(NetworkLive, UpdateReplacesThePolicyLive) {
  auto& s = make({});
  EXPECT_EQ(from(s, internet()), "200");
  auto st = network().update(s.id, {true, {}, {"0.0.0.0/0"}});
  ASSERT_TRUE(st.ok()) << error_of(st);
  EXPECT_NE(from(s, internet()), "200");
  st = network().update(s.id, {true, {inet_addr_}, {"0.0.0.0/0"}});
  ASSERT_TRUE(st.ok()) << error_of(st);
  EXPECT_EQ(from(s, internet()), "200");
  // A bad policy is refused and the one in force stays.
  st = network().update(s.id, {true, {}, {"example.com"}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().status, 400);
  EXPECT_EQ(from(s, internet()), "200");
  ASSERT_NE(nft_table().find("chain sbx_" + s.id), std::string::npos);
  // Back to the default: a verdict again, and the chain is gone.
  st = network().update(s.id, {});
  ASSERT_TRUE(st.ok()) << error_of(st);
  EXPECT_EQ(from(s, internet()), "200");
  EXPECT_EQ(nft_table().find("chain sbx_" + s.id), std::string::npos);
  st = network().update(s.id, {false, {}, {}});
  ASSERT_TRUE(st.ok()) << error_of(st);
  EXPECT_NE(from(s, internet()), "200");
  EXPECT_EQ(network().update(new_sandbox_id(), {}).error().status, 404);
}

TEST_F(NetworkLive, HostAndOtherSandboxesAreUnreachable) {
  auto& a = make({});
  auto& b = make({true, {"0.0.0.0/0"}, {}}); // even allowing everything
  auto a_addr = *network().sandbox_address(a.id);
  auto b_addr = *network().sandbox_address(b.id);
  ASSERT_NE(a_addr, b_addr);
  // B serves HTTP; the host reaches it, A does not.
  bg web_b{b.in({"python3", "-m", "http.server", "8081", "--bind", b_addr, "--directory",
                 work_.string()})};
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = get(sh_host(), "http://" + b_addr + ":8081/") == "200";
    if (!up)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up);
  EXPECT_NE(from(a, "http://" + b_addr + ":8081/"), "200");
  // The host serves HTTP on an address of its own (the stand-in's link) and
  // on A's gateway: the stand-in behind it is reachable, the host is not.
  auto gw = ipv4_to_string(ip(a_addr) - 1);
  bg host_web{{"python3", "-m", "http.server", "8082", "--bind", inet_host_, "--directory",
               work_.string()}};
  bg gw_web{{"python3", "-m", "http.server", "8083", "--bind", gw, "--directory",
             work_.string()}};
  up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = get(sh_host(), "http://" + inet_host_ + ":8082/") == "200"
         && get(sh_host(), "http://" + gw + ":8083/") == "200";
    if (!up)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up);
  EXPECT_EQ(from(a, internet()), "200");
  EXPECT_NE(from(a, "http://" + inet_host_ + ":8082/"), "200");
  EXPECT_NE(from(a, "http://" + gw + ":8083/"), "200");
  EXPECT_NE(from(b, "http://" + gw + ":8083/"), "200");
}

TEST_F(NetworkLive, ConcurrentSetupsGetDistinctAddressesUntilThePoolIsFull) {
  // The test pool is a /27 clear of host addresses: eight /30s for nine sandboxes.
  std::vector<fake_sandbox*> many;
  for (int i = 0; i < 9; ++i)
    many.push_back(&make());
  auto& net = network(); // made here, not raced for by the threads below
  std::vector<status> results(many.size(), success());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < many.size(); ++i)
    threads.emplace_back([&, i] {
      results[i] = net.setup(many[i]->id, many[i]->proc.pid(), {});
    });
  for (auto& t : threads)
    t.join();
  std::set<std::string> addrs;
  int failed = 0;
  for (size_t i = 0; i < many.size(); ++i) {
    if (!results[i]) {
      ++failed;
      EXPECT_EQ(results[i].error().status, 409) << results[i].error().message;
      EXPECT_FALSE(link_exists(veth_name(many[i]->id)));
      continue;
    }
    addrs.insert(*network().sandbox_address(many[i]->id));
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(addrs.size(), 8u);
  for (size_t i = 0; i < many.size(); ++i)
    if (results[i]) {
      EXPECT_EQ(from(*many[i], internet()), "200");
      break;
    }
}

TEST_F(NetworkLive, TeardownLeavesNothingAndIsIdempotent) {
  auto& s = make({true, {"198.51.100.0/24"}, {"0.0.0.0/0"}});
  auto veth = veth_name(s.id);
  ASSERT_TRUE(link_exists(veth));
  ASSERT_TRUE(network().teardown(s.id).ok());
  EXPECT_FALSE(link_exists(veth));
  auto table = nft_table();
  EXPECT_EQ(table.find(s.id), std::string::npos) << table;
  EXPECT_EQ(table.find(veth), std::string::npos) << table;
  EXPECT_TRUE(network().teardown(s.id).ok());
  EXPECT_TRUE(network().teardown(new_sandbox_id()).ok());
}

TEST_F(NetworkLive, FailedSetupUndoesEverything) {
  auto& s = make();
  // Not a sandbox's namespace: a pid that is not there, or the host's own.
  EXPECT_FALSE(network().setup(s.id, 0x3ffffff, {}).ok());
  EXPECT_FALSE(network().setup(s.id, ::getpid(), {}).ok());
  EXPECT_FALSE(link_exists(veth_name(s.id)));
  // A bad policy: refused before anything is made.
  auto st = network().setup(s.id, s.proc.pid(), {true, {}, {"nope.example"}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().status, 400);
  EXPECT_FALSE(link_exists(veth_name(s.id)));
  // The last step fails (the netns already has a default route): the veth
  // and the rules made before it are removed.
  int code = 0;
  for (auto cmd : std::vector<std::vector<std::string>>{
         {"ip", "link", "set", "lo", "up"},
         {"ip", "route", "add", "default", "dev", "lo"}}) {
    auto out = sh(s.in(cmd), &code);
    ASSERT_EQ(code, 0) << out;
  }
  st = network().setup(s.id, s.proc.pid(), {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("sandbox network"), std::string::npos) << st.error().message;
  EXPECT_FALSE(link_exists(veth_name(s.id)));
  EXPECT_EQ(nft_table().find(s.id), std::string::npos);
}

TEST_F(NetworkLive, SweepRemovesChainsWhoseSandboxIsGone) {
  auto& gone = make({});
  auto& gone_with_chain = make({true, {}, {"192.0.2.0/24"}});
  auto& live = make({});
  for (auto* s : {&gone, &gone_with_chain}) {
    s->proc.stop(); // the netns dies, and the veth pair with it
    for (int i = 0; i < 300 && link_exists(veth_name(s->id)); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_FALSE(link_exists(veth_name(s->id)));
  }
  ASSERT_NE(nft_table().find("chain sbx_" + gone_with_chain.id), std::string::npos);
  ASSERT_NE(nft_table().find("\"" + veth_name(gone.id) + "\""), std::string::npos);
  auto swept = network().sweep();
  ASSERT_TRUE(swept.ok()) << swept.error().message;
  // Default policies are a map verdict: swept by their veth name.
  EXPECT_NE(std::find(swept->begin(), swept->end(), veth_name(gone.id)), swept->end());
  EXPECT_EQ(std::find(swept->begin(), swept->end(), veth_name(live.id)), swept->end());
  auto table = nft_table();
  EXPECT_EQ(table.find(veth_name(gone.id)), std::string::npos);
  EXPECT_NE(std::find(swept->begin(), swept->end(), gone_with_chain.id), swept->end());
  EXPECT_EQ(table.find(gone_with_chain.id), std::string::npos);
  EXPECT_EQ(table.find(veth_name(gone_with_chain.id)), std::string::npos);
  EXPECT_NE(table.find(veth_name(live.id)), std::string::npos);
  EXPECT_EQ(from(live, internet()), "200");
}
