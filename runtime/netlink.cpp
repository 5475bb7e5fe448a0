#include "runtime/netlink.hpp"

// <net/if.h> before any linux/ header: both define the IFF_ flags.
#include <net/if.h>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/fd_closer.hpp"

namespace sandboxd {

namespace {

// Requests are small; answers to a dump come in pages of at most this.
constexpr size_t buffer_size = 32768;

failure netlink_error(const std::string& what, int err) {
  if (err == ENODEV)
    return not_found(what + ": no such link");
  return internal_error(what + ": " + std::strerror(err));
}

nlmsghdr* start(std::vector<char>& buf, uint16_t type, uint16_t flags, unsigned seq) {
  auto* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = seq;
  return nlh;
}

} // namespace

result<rtnetlink> rtnetlink::open() {
  auto* sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!sock)
    return internal_error(std::string{"netlink socket: "} + std::strerror(errno));
  if (mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(sock);
    return internal_error(std::string{"netlink bind: "} + std::strerror(err));
  }
  return rtnetlink{sock};
}

result<rtnetlink> rtnetlink::open_in(int netns_fd) {
  fd_closer home{::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)};
  if (home.get() < 0)
    return internal_error(std::string{"open this thread's network namespace: "}
                          + std::strerror(errno));
  if (::setns(netns_fd, CLONE_NEWNET) != 0)
    return internal_error(std::string{"enter the sandbox's network namespace: "}
                          + std::strerror(errno));
  auto opened = open();
  if (::setns(home.get(), CLONE_NEWNET) != 0) {
    // A server thread left inside a sandbox's network would make every later
    // connection of it there: stopping is the only safe way on.
    spdlog::critical("cannot return to the host's network namespace: {}", std::strerror(errno));
    std::abort();
  }
  return opened;
}

rtnetlink::rtnetlink(mnl_socket* sock) : sock_(sock), port_(mnl_socket_get_portid(sock)) {}

rtnetlink::rtnetlink(rtnetlink&& other) noexcept
  : sock_(other.sock_), port_(other.port_), seq_(other.seq_) {
  other.sock_ = nullptr;
}

rtnetlink::~rtnetlink() {
  if (sock_)
    mnl_socket_close(sock_);
}

status rtnetlink::talk(void* buf, const std::string& what) {
  auto* nlh = static_cast<nlmsghdr*>(buf);
  nlh->nlmsg_flags |= NLM_F_ACK;
  if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0)
    return netlink_error(what, errno);
  std::vector<char> answer(buffer_size);
  for (;;) {
    auto n = mnl_socket_recvfrom(sock_, answer.data(), answer.size());
    if (n < 0)
      return netlink_error(what, errno);
    int r = mnl_cb_run(answer.data(), static_cast<size_t>(n), nlh->nlmsg_seq, port_, nullptr,
                       nullptr);
    if (r < 0)
      return netlink_error(what, errno);
    if (r == MNL_CB_STOP)
      return success();
  }
}

status rtnetlink::add_veth(const std::string& name, const std::string& peer, int peer_netns_pid) {
  std::vector<char> buf(buffer_size);
  auto* nlh = start(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ++seq_);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  auto* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  auto* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  auto* peer_info = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  // The peer's attributes follow an ifinfomsg of its own.
  mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg));
  mnl_attr_put_strz(nlh, IFLA_IFNAME, peer.c_str());
  mnl_attr_put_u32(nlh, IFLA_NET_NS_PID, static_cast<uint32_t>(peer_netns_pid));
  mnl_attr_nest_end(nlh, peer_info);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, info);
  return talk(nlh, "create veth " + name);
}

status rtnetlink::set_up(const std::string& name, const std::string& alias) {
  std::vector<char> buf(buffer_size);
  auto* nlh = start(buf, RTM_NEWLINK, 0, ++seq_);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  if (!alias.empty())
    mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias.c_str());
  return talk(nlh, "set " + name + " up");
}

result<unsigned> rtnetlink::index_of(const std::string& name) {
  // Asked over this socket, not if_nametoindex(): that asks the namespace of
  // the calling thread, which need not be the socket's (open_in).
  std::vector<char> buf(buffer_size);
  auto* nlh = start(buf, RTM_GETLINK, 0, ++seq_);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0)
    return netlink_error("find link " + name, errno);
  std::vector<char> answer(buffer_size);
  unsigned index = 0;
  auto on_message = [](const nlmsghdr* m, void* arg) -> int {
    *static_cast<unsigned*>(arg) =
      static_cast<unsigned>(static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(m))->ifi_index);
    return MNL_CB_STOP;
  };
  auto n = mnl_socket_recvfrom(sock_, answer.data(), answer.size());
  if (n < 0)
    return netlink_error("find link " + name, errno);
  if (mnl_cb_run(answer.data(), static_cast<size_t>(n), nlh->nlmsg_seq, port_, on_message,
                 &index) < 0)
    return netlink_error("find link " + name, errno);
  if (index == 0)
    return netlink_error("find link " + name, ENODEV);
  return index;
}

status rtnetlink::add_address(const std::string& name, uint32_t addr, int prefix_len) {
  auto index = index_of(name);
  if (!index)
    return failure{index.error().status, "address on " + name + ": " + index.error().message};
  std::vector<char> buf(buffer_size);
  auto* nlh = start(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ++seq_);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<unsigned char>(prefix_len);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = *index;
  uint32_t be = htonl(addr);
  mnl_attr_put(nlh, IFA_LOCAL, sizeof be, &be);
  mnl_attr_put(nlh, IFA_ADDRESS, sizeof be, &be);
  return talk(nlh, "address on " + name);
}

status rtnetlink::add_default_route(const std::string& name, uint32_t gateway) {
  auto index = index_of(name);
  if (!index)
    return failure{index.error().status, "default route on " + name + ": " + index.error().message};
  std::vector<char> buf(buffer_size);
  auto* nlh = start(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, ++seq_);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  uint32_t be = htonl(gateway);
  mnl_attr_put(nlh, RTA_GATEWAY, sizeof be, &be);
  mnl_attr_put_u32(nlh, RTA_OIF, *index);
  return talk(nlh, "default route on " + name);
}

status rtnetlink::delete_link(const std::string& name) {
  std::vector<char> buf(buffer_size);
  auto* nlh = start(buf, RTM_DELLINK, 0, ++seq_);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  return talk(nlh, "delete link " + name);
}

std::optional<std::pair<uint32_t, int>> parse_ipv4_address(const nlmsghdr* m) {
  if (m->nlmsg_len < mnl_nlmsg_size(sizeof(ifaddrmsg)))
    return std::nullopt;
  auto* a = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
  if (a->ifa_family != AF_INET)
    return std::nullopt;
  const nlattr* local = nullptr;
  const nlattr* address = nullptr;
  for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(m, sizeof(ifaddrmsg)));
       mnl_attr_ok(attr, static_cast<int>(static_cast<const char*>(mnl_nlmsg_get_payload_tail(m))
                                          - reinterpret_cast<const char*>(attr)));
       attr = mnl_attr_next(attr)) {
    auto type = mnl_attr_get_type(attr);
    if (mnl_attr_get_payload_len(attr) != 4)
      continue;
    if (type == IFA_LOCAL)
      local = attr;
    else if (type == IFA_ADDRESS)
      address = attr;
  }
  auto* use = local ? local : address;
  if (!use)
    return std::nullopt;
  uint32_t be;
  std::memcpy(&be, mnl_attr_get_payload(use), 4);
  return std::pair{ntohl(be), static_cast<int>(a->ifa_index)};
}

result<std::vector<std::pair<uint32_t, int>>> rtnetlink::ipv4_addresses() {
  std::vector<char> buf(buffer_size);
  auto* nlh = start(buf, RTM_GETADDR, NLM_F_DUMP, ++seq_);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0)
    return netlink_error("list addresses", errno);
  std::vector<std::pair<uint32_t, int>> out;
  auto on_message = [](const nlmsghdr* m, void* arg) -> int {
    if (auto a = parse_ipv4_address(m))
      static_cast<std::vector<std::pair<uint32_t, int>>*>(arg)->push_back(*a);
    return MNL_CB_OK;
  };
  std::vector<char> answer(buffer_size);
  for (;;) {
    auto n = mnl_socket_recvfrom(sock_, answer.data(), answer.size());
    if (n < 0)
      return netlink_error("list addresses", errno);
    int r = mnl_cb_run(answer.data(), static_cast<size_t>(n), nlh->nlmsg_seq, port_,
                       on_message, &out);
    if (r < 0)
      return netlink_error("list addresses", errno);
    if (r == MNL_CB_STOP)
      return out;
  }
}

} // namespace sandboxd
