#include "runtime/address_view.hpp"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/netlink.hpp"

namespace sandboxd {

address_view::~address_view() {
  if (events_)
    mnl_socket_close(events_);
}

void address_view::apply(uint16_t type, uint32_t addr, int index) {
  if (type == RTM_NEWADDR) {
    if (by_address_.emplace(addr, index).second)
      by_link_.emplace(index, addr);
    return;
  }
  if (by_address_.erase({addr, index}) == 0)
    return;
  auto [from, to] = by_link_.equal_range(index);
  for (auto it = from; it != to; ++it)
    if (it->second == addr) {
      by_link_.erase(it);
      break;
    }
}

status address_view::resubscribe() {
  if (events_) {
    mnl_socket_close(events_);
    events_ = nullptr;
  }
  by_address_.clear();
  by_link_.clear();
  // Subscribed before the dump: a change racing the dump is queued, and
  // applying the queue after it ends on the kernel's current state (the
  // last word on each address is the newest).
  auto* sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (!sock)
    return internal_error(std::string{"netlink socket: "} + std::strerror(errno));
  // Room for a burst (a mass kill deletes an address per sandbox); an
  // overflow costs one dump, never a wrong answer.
  int size = receive_buffer_;
  int fd = mnl_socket_get_fd(sock);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size); // capped, still correct
  if (mnl_socket_bind(sock, RTMGRP_IPV4_IFADDR, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(sock);
    return internal_error(std::string{"netlink subscribe to addresses: "} + std::strerror(err));
  }
  events_ = sock;
  auto nl = rtnetlink::open();
  if (!nl)
    return nl.error();
  auto all = nl->ipv4_addresses();
  if (!all)
    return all.error();
  for (auto& [addr, index] : *all)
    apply(RTM_NEWADDR, addr, index);
  return success();
}

status address_view::sync() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!events_)
    if (auto st = resubscribe(); !st)
      return st;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  for (;;) {
    auto n = mnl_socket_recvfrom(events_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return success();
      if (errno == EINTR)
        continue;
      if (errno == ENOBUFS) { // changes were dropped: start over from a dump
        if (auto st = resubscribe(); !st)
          return st;
        continue;
      }
      int err = errno;
      mnl_socket_close(events_);
      events_ = nullptr;
      return internal_error(std::string{"netlink address notifications: "} + std::strerror(err));
    }
    auto len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len);
         m = mnl_nlmsg_next(m, &len))
      if (m->nlmsg_type == RTM_NEWADDR || m->nlmsg_type == RTM_DELADDR)
        if (auto a = parse_ipv4_address(m))
          apply(m->nlmsg_type, a->first, a->second);
  }
}

bool address_view::any_in(uint32_t first, uint64_t count) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = by_address_.lower_bound({first, std::numeric_limits<int>::min()});
  return it != by_address_.end() && uint64_t{it->first} - first < count;
}

std::optional<uint32_t> address_view::address_on(int index) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = by_link_.find(index);
  if (it == by_link_.end())
    return std::nullopt;
  return it->second;
}

} // namespace sandboxd
