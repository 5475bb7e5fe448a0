// rtnetlink in-process (libmnl): the few link, address and route operations
// sandbox networking needs, without spawning `ip` for each.
//
// A socket works in the network namespace it was opened in, whatever thread
// uses it later; every call blocks only for the kernel's answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"

struct mnl_socket;

struct nlmsghdr;

namespace sandboxd {

/// The IPv4 address and link index an RTM_NEWADDR/RTM_DELADDR message names
/// (IFA_LOCAL, else IFA_ADDRESS); nothing for another family.
std::optional<std::pair<uint32_t, int>> parse_ipv4_address(const nlmsghdr* m);

class rtnetlink {
public:
  /// Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
  static result<rtnetlink> open();
  /// Opens one in the network namespace `netns_fd` refers to: the calling
  /// thread enters it only to create the socket, then returns to its own.
  static result<rtnetlink> open_in(int netns_fd);

  rtnetlink(rtnetlink&& other) noexcept;
  rtnetlink& operator=(rtnetlink&&) = delete;
  rtnetlink(const rtnetlink&) = delete;
  ~rtnetlink();

  /// A veth pair: `name` here, `peer` inside the network namespace of
  /// process `peer_netns_pid`. Fails if `name` exists.
  status add_veth(const std::string& name, const std::string& peer, int peer_netns_pid);
  /// Sets the link up, and its alias when `alias` is not empty.
  status set_up(const std::string& name, const std::string& alias = {});
  /// Adds `addr`/`prefix_len` (host byte order) to the link.
  status add_address(const std::string& name, uint32_t addr, int prefix_len);
  /// The default route through `gateway` (host byte order) on the link.
  status add_default_route(const std::string& name, uint32_t gateway);
  /// Deletes the link (a veth takes its peer with it); not_found if absent.
  status delete_link(const std::string& name);
  /// Every IPv4 address in this namespace with its link's index (one dump).
  result<std::vector<std::pair<uint32_t, int>>> ipv4_addresses();

private:
  explicit rtnetlink(mnl_socket* sock);
  /// The index of link `name` in the socket's namespace.
  result<unsigned> index_of(const std::string& name);
  /// Sends the request in `buf` and waits for its acknowledgement.
  status talk(void* buf, const std::string& what);

  mnl_socket* sock_ = nullptr;
  unsigned port_ = 0;
  unsigned seq_ = 0;
};

} // namespace sandboxd
