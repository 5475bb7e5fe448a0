// The webhook address policy: every spelling of an inside address is
// classified as what it reaches, registration refuses it, and libcurl's
// connect-time check refuses it too (the DNS-rebinding case: a URL that got
// past registration still connects nowhere inside).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webhooks/address_policy.hpp"
#include "webhooks/http_post.hpp"

using namespace sandboxd::webhooks;
using ac = address_class;

namespace {

ac class_of(const std::string& host) {
  auto a = parse_ip_literal(host);
  EXPECT_TRUE(a) << host << " did not parse";
  return a ? classify(*a) : ac::global;
}

// Every spelling getaddrinfo or curl turns into an inside address.
const std::vector<std::pair<std::string, ac>> inside = {
  // loopback
  {"127.0.0.1", ac::loopback}, {"127.1", ac::loopback}, {"127.0.1", ac::loopback},
  {"127.255.255.254", ac::loopback}, {"2130706433", ac::loopback},
  {"0x7f000001", ac::loopback}, {"0X7F000001", ac::loopback}, {"0x7f.1", ac::loopback},
  {"0x7f.0.0.0x1", ac::loopback}, {"0177.0.0.1", ac::loopback},
  {"017700000001", ac::loopback}, {"0177.1", ac::loopback}, {"::1", ac::loopback},
  {"[::1]", ac::loopback}, {"0:0:0:0:0:0:0:1", ac::loopback},
  {"::ffff:127.0.0.1", ac::loopback}, {"[::ffff:127.0.0.1]", ac::loopback},
  {"::ffff:7f00:1", ac::loopback}, {"::127.0.0.1", ac::loopback},
  {"::ffff:0:127.0.0.1", ac::loopback}, {"64:ff9b::127.0.0.1", ac::loopback},
  {"2002:7f00:1::", ac::loopback},
  // unspecified
  {"0.0.0.0", ac::unspecified}, {"0", ac::unspecified}, {"0x0", ac::unspecified},
  {"00", ac::unspecified}, {"0.1.2.3", ac::unspecified}, {"::", ac::unspecified},
  {"[::]", ac::unspecified}, {"::ffff:0.0.0.0", ac::unspecified},
  // RFC 1918, CGNAT
  {"10.0.0.1", ac::private_use}, {"10.255.255.255", ac::private_use},
  {"167772161", ac::private_use}, {"0xa000001", ac::private_use}, {"012.1", ac::private_use},
  {"172.16.0.1", ac::private_use}, {"172.31.255.255", ac::private_use},
  {"192.168.0.1", ac::private_use}, {"192.168.65535", ac::private_use},
  {"::ffff:10.0.0.1", ac::private_use}, {"::ffff:c0a8:1", ac::private_use},
  {"100.64.0.1", ac::shared}, {"100.127.255.255", ac::shared},
  {"::ffff:100.64.0.1", ac::shared},
  // unique-local, link-local
  {"fc00::1", ac::unique_local}, {"fdff:ffff::1", ac::unique_local},
  {"fd00:ec02::254", ac::unique_local}, // the old typo of the metadata address
  {"169.254.0.1", ac::link_local}, {"169.254.255.255", ac::link_local},
  {"::ffff:169.254.1.1", ac::link_local}, {"fe80::1", ac::link_local},
  {"FE80::1", ac::link_local}, {"fe80::1%eth0", ac::link_local},
  {"[fe80::1%25eth0]", ac::link_local}, {"febf:ffff::1", ac::link_local},
  // cloud metadata
  {"169.254.169.254", ac::metadata}, {"0xa9fea9fe", ac::metadata},
  {"2852039166", ac::metadata}, {"0251.0376.0251.0376", ac::metadata},
  {"169.254.43518", ac::metadata}, {"169.16689662", ac::metadata},
  {"::ffff:169.254.169.254", ac::metadata}, {"::ffff:a9fe:a9fe", ac::metadata},
  {"64:ff9b::a9fe:a9fe", ac::metadata}, {"169.254.170.2", ac::metadata},
  {"100.100.100.200", ac::metadata}, {"fd00:ec2::254", ac::metadata},
  {"[fd00:ec2::254]", ac::metadata}, {"FD00:0EC2:0:0:0:0:0:0254", ac::metadata},
  // multicast, broadcast, reserved
  {"224.0.0.1", ac::multicast}, {"239.255.255.250", ac::multicast},
  {"ff02::1", ac::multicast}, {"::ffff:224.0.0.1", ac::multicast},
  {"255.255.255.255", ac::broadcast}, {"0xffffffff", ac::broadcast},
  {"4294967295", ac::broadcast}, {"240.0.0.1", ac::reserved}, {"192.0.0.8", ac::reserved},
  {"192.0.2.1", ac::reserved}, {"198.51.100.7", ac::reserved}, {"203.0.113.9", ac::reserved},
  {"198.18.0.1", ac::reserved}, {"198.19.255.255", ac::reserved},
  {"192.88.99.1", ac::reserved}, {"2001:db8::1", ac::reserved}, {"2001::1", ac::reserved},
  {"2001:20::1", ac::reserved}, {"fec0::1", ac::reserved}, {"100::1", ac::reserved},
  {"3fff::1", ac::reserved}, {"64:ff9b:1::1", ac::reserved},
};

const std::vector<std::string> outside = {
  "8.8.8.8", "1.1.1.1", "93.184.215.14", "134744072", "0x8080808", "100.63.255.255",
  "100.128.0.0", "172.15.255.255", "172.32.0.0", "169.253.255.255", "169.255.0.0",
  "11.0.0.0", "9.255.255.255", "192.167.255.255", "192.169.0.0", "198.17.255.255",
  "198.20.0.0", "223.255.255.255", "2606:4700:4700::1111", "2a00:1450:4001::1",
  "[2a00:1450:4001::1]", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::8.8.8.8",
  "2001:200::1",
};

// Not numeric to getaddrinfo (names, or numbers inet_aton refuses).
const std::vector<std::string> not_literals = {
  "localhost", "example.com", "127.0.0.1.", "1.2.3.4.5", "256.0.0.1", "1.256.0.0",
  "1.16777216", "1.2.65536", "4294967296", "08.0.0.1", "0x", "0x.1", "", "-1", "1..1",
  "+1", "127.0.0.1x", "0x1g", "[::1", ":::1", "fe80::1::2", "1.2.3.4:80",
};

} // namespace

TEST(webhook_address, every_inside_spelling_is_classified_as_what_it_reaches) {
  for (auto& [host, want] : inside) {
    EXPECT_EQ(class_of(host), want) << host << " is " << describe(class_of(host));
    auto a = parse_ip_literal(host);
    ASSERT_TRUE(a) << host;
    auto why = refusal(*a, false);
    ASSERT_TRUE(why) << host << " was allowed";
    EXPECT_NE(why->find(std::string(describe(want))), std::string::npos) << *why;
    EXPECT_NE(why->find("--allow-private-webhooks true"), std::string::npos) << *why;
    EXPECT_FALSE(refusal(*a, true)) << host << ": the flag opens every class";
  }
}

TEST(webhook_address, public_addresses_are_allowed) {
  for (auto& host : outside) {
    EXPECT_EQ(class_of(host), ac::global) << host << " is " << describe(class_of(host));
    if (auto a = parse_ip_literal(host)) {
      EXPECT_FALSE(refusal(*a, false)) << host;
    }
  }
}

TEST(webhook_address, only_what_getaddrinfo_reads_as_numeric_parses) {
  for (auto& host : not_literals)
    EXPECT_FALSE(parse_ip_literal(host)) << host;
}

// The parser is ours; glibc's inet_aton is what getaddrinfo uses. They agree
// on every IPv4 spelling above, accepted or not.
TEST(webhook_address, ipv4_parsing_agrees_with_inet_aton) {
  std::vector<std::string> all = outside;
  all.insert(all.end(), not_literals.begin(), not_literals.end());
  for (auto& [host, c] : inside)
    all.push_back(host);
  for (auto& host : all) {
    if (host.find(':') != std::string::npos || host.empty() || host.front() == '[')
      continue;
    in_addr libc{};
    bool libc_ok = inet_aton(host.c_str(), &libc) == 1;
    auto ours = parse_ip_literal(host);
    EXPECT_EQ(bool(ours), libc_ok) << host;
    if (ours && libc_ok) {
      EXPECT_EQ(ours->v4, ntohl(libc.s_addr)) << host;
    }
  }
}

TEST(webhook_address, sockaddrs_are_read_in_both_families) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  inet_pton(AF_INET, "169.254.169.254", &v4.sin_addr);
  auto a = from_sockaddr(reinterpret_cast<sockaddr*>(&v4));
  ASSERT_TRUE(a);
  EXPECT_EQ(classify(*a), ac::metadata);
  EXPECT_EQ(a->to_string(), "169.254.169.254");
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6.sin6_addr);
  a = from_sockaddr(reinterpret_cast<sockaddr*>(&v6));
  ASSERT_TRUE(a);
  EXPECT_EQ(classify(*a), ac::loopback);
  sockaddr unix_sa{};
  unix_sa.sa_family = AF_UNIX;
  EXPECT_FALSE(from_sockaddr(&unix_sa));
}

TEST(webhook_address, registration_refuses_inside_urls_by_default) {
  const std::vector<std::pair<std::string, std::string>> refused = {
    {"http://127.0.0.1:3000/hook", "loopback"}, {"http://127.1/", "loopback"},
    {"http://[::1]:80/", "loopback"}, {"http://0.0.0.0/", "unspecified"},
    {"http://2130706433/", "loopback"}, {"http://0x7f000001/", "loopback"},
    {"http://0177.0.0.1/", "loopback"}, {"http://[::ffff:127.0.0.1]/", "loopback"},
    {"https://localhost/", "loopback"}, {"http://LOCALHOST./", "loopback"},
    {"http://api.localhost:8080/", "loopback"}, {"http://user:pw@127.0.0.1/", "loopback"},
    {"http://10.1.2.3/", "RFC 1918"}, {"http://172.16.0.1/", "RFC 1918"},
    {"http://192.168.1.1/", "RFC 1918"}, {"http://100.64.0.1/", "carrier-grade NAT"},
    {"http://[fd12::1]/", "unique-local"}, {"http://169.254.1.1/", "link-local"},
    {"http://[fe80::1%25eth0]/", "link-local"}, {"http://169.254.169.254/", "metadata"},
    {"http://[fd00:ec2::254]/", "metadata"}, {"http://[::ffff:169.254.169.254]/", "metadata"},
    {"http://metadata.google.internal/", "metadata"}, {"http://224.0.0.1/", "multicast"},
    {"http://255.255.255.255/", "broadcast"}, {"http://192.0.2.1/", "reserved"},
  };
  for (auto& [url, what] : refused) {
    auto st = check_destination(url, false);
    ASSERT_FALSE(st) << url << " was accepted";
    EXPECT_EQ(st.error().status, 400);
    EXPECT_NE(st.error().message.find(what), std::string::npos)
      << url << ": " << st.error().message;
    EXPECT_TRUE(check_destination(url, true)) << url << " refused with the flag";
  }
  EXPECT_TRUE(check_destination("http://8.8.8.8/hook", false));
  EXPECT_TRUE(check_destination("https://[2606:4700:4700::1111]:8443/x", false));
  for (auto url : {"ftp://8.8.8.8/", "file:///etc/passwd", "http:///x", "8.8.8.8/x"}) {
    EXPECT_FALSE(check_destination(url, true)) << url;
    EXPECT_FALSE(validate_url(url)) << url;
  }
}

namespace {

// A loopback TCP listener that counts connections and answers each with
// `reply` (empty: accepts and says nothing).
struct listener {
  int fd = -1;
  int port = 0;
  std::atomic<int> accepted{0};
  std::atomic<bool> stop{false};
  std::string reply;
  std::thread thread;

  explicit listener(std::string r = "") : reply(std::move(r)) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    thread = std::thread([this] {
      while (!stop) {
        int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        ++accepted;
        char buf[4096];
        timeval tv{0, 200000};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)::recv(c, buf, sizeof buf, 0);
        if (!reply.empty())
          (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~listener() {
    stop = true;
    thread.join();
    ::close(fd);
  }
};

post_result send(const std::string& url, bool allow_private) {
  init_http_client();
  return post(url, {{"Content-Type", "application/json"}}, "{}", std::chrono::seconds(3),
              allow_private);
}

} // namespace

// Registration is bypassed here on purpose: this is the URL whose name
// resolved to something public then and to loopback now.
TEST(webhook_address, connect_time_check_refuses_inside_peers) {
  listener target("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  auto port = std::to_string(target.port);
  for (auto url : {"http://127.0.0.1:" + port + "/", "http://localhost:" + port + "/",
                   "http://[::ffff:127.0.0.1]:" + port + "/", "http://127.1:" + port + "/",
                   "http://2130706433:" + port + "/"}) {
    auto r = send(url, false);
    EXPECT_EQ(r.error_class, "refused_address") << url << ": " << r.error_message;
    EXPECT_NE(r.error_message.find("loopback"), std::string::npos) << r.error_message;
    EXPECT_EQ(r.http_status, 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(target.accepted.load(), 0) << "a refused address was connected to";
  // The flag opens loopback: the same URL is delivered.
  auto r = send("http://127.0.0.1:" + port + "/", true);
  EXPECT_TRUE(r.ok()) << r.error_class << ": " << r.error_message;
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(target.accepted.load(), 1);
}

TEST(webhook_address, redirects_are_not_followed) {
  listener second("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  listener first("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:" + std::to_string(second.port)
                 + "/stolen\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  auto r = send("http://127.0.0.1:" + std::to_string(first.port) + "/", true);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error_class, "http_error");
  EXPECT_EQ(r.http_status, 302);
  EXPECT_NE(r.error_message.find("redirects are not followed"), std::string::npos)
    << r.error_message;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(first.accepted.load(), 1);
  EXPECT_EQ(second.accepted.load(), 0);
}

TEST(webhook_address, only_http_and_https_are_spoken) {
  listener target;
  auto r = send("ftp://127.0.0.1:" + std::to_string(target.port) + "/", true);
  EXPECT_EQ(r.error_class, "transport_error") << r.error_message;
  EXPECT_EQ(target.accepted.load(), 0);
}
