#include "http/connection_gate.hpp"

#include <algorithm>

#include <arpa/inet.h>

namespace sandboxd::http {

connection_limits fit_connection_limits(connection_limits asked, size_t nofile,
                                        size_t max_sandboxes, bool* lowered, bool tls) {
  // Kept for the rest of the server: RocksDB (256 files), the executors, and
  // per sandbox its pidfd, agent connections and disk while it boots.
  size_t reserve = 1024 + 8 * max_sandboxes;
  size_t per_connection = tls ? 4 : 2; // envd's one, and the API's one or three
  size_t room = nofile > reserve + per_connection * asked.refusing
                  ? (nofile - reserve) / per_connection - asked.refusing : 0;
  connection_limits out = asked;
  out.total = std::max<size_t>(16, std::min(asked.total, room));
  out.per_client = std::min(asked.per_client, out.total);
  if (lowered)
    *lowered = out.total != asked.total || out.per_client != asked.per_client;
  return out;
}

std::string client_key(const std::string& address) {
  in6_addr a{};
  if (address.find(':') == std::string::npos || ::inet_pton(AF_INET6, address.c_str(), &a) != 1)
    return address;
  // An IPv4 client of a dual-stack listener (::ffff:a.b.c.d) is that IPv4
  // address: a /64 would put every IPv4 client under one key.
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    char v4[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, a.s6_addr + 12, v4, sizeof v4);
    return v4;
  }
  std::fill(a.s6_addr + 8, a.s6_addr + 16, 0);
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, &a, text, sizeof text);
  return std::string(text) + "/64";
}

connection_gate::verdict connection_gate::admit(const std::string& client) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto refuse = [this] {
    if (refusing_ >= limits_.refusing)
      return verdict::hang_up;
    ++refusing_;
    return verdict::explain;
  };
  if (open_ >= limits_.total)
    return refuse();
  auto it = by_client_.find(client);
  if (it != by_client_.end() && it->second >= limits_.per_client)
    return refuse();
  ++by_client_[client];
  ++open_;
  return verdict::admit;
}

void connection_gate::release(const std::string& client, verdict was) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (was == verdict::explain) {
    refusing_ -= refusing_ > 0;
    return;
  }
  if (was != verdict::admit)
    return;
  auto it = by_client_.find(client);
  if (it == by_client_.end())
    return;
  --open_;
  if (--it->second == 0)
    by_client_.erase(it);
}

size_t connection_gate::open() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return open_;
}

void connection_ticket::release() {
  std::call_once(released_, [this] { gate_->release(client_, was_); });
}

} // namespace sandboxd::http
