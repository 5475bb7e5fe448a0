#pragma once

// The IPv4 addresses of the host's network namespace, kept in memory from
// the kernel's address notifications: one dump when first used (and again
// only if notifications were lost), then only what changed. A /30 search
// costs O(log n) instead of a dump of every sandbox's address per create.
//
// Other servers on the host stay visible: the kernel queues a notification
// on our socket before it acknowledges the change to whoever made it, so a
// change made before we took the host lock is read by the sync() after it.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "core/result.hpp"

struct mnl_socket;

namespace sandboxd {

class address_view {
public:
  /// `receive_buffer`: room for queued changes, in bytes (tests make it tiny).
  explicit address_view(int receive_buffer = 4 << 20) : receive_buffer_(receive_buffer) {}
  ~address_view();
  address_view(const address_view&) = delete;
  address_view& operator=(const address_view&) = delete;

  /// Applies every queued change (after a dump the first time, or when the
  /// kernel dropped notifications). Call before asking.
  status sync();
  /// Whether any address lies in [first, first + count).
  bool any_in(uint32_t first, uint64_t count) const;
  /// An address on link `index`, if it has one.
  std::optional<uint32_t> address_on(int index) const;

private:
  status resubscribe();
  void apply(uint16_t type, uint32_t addr, int index);

  int receive_buffer_;
  mutable std::mutex mtx_;
  mnl_socket* events_ = nullptr;
  std::set<std::pair<uint32_t, int>> by_address_;
  std::multimap<int, uint32_t> by_link_;
};

} // namespace sandboxd
