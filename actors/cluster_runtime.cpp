#include "actors/cluster_runtime.hpp"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "actors/tunnel.hpp"

namespace sandboxd {

namespace {

// A create waits for the worker's container and agent (seconds under load);
// every other call is quick on a healthy node.
constexpr std::chrono::seconds create_wait{120};
constexpr std::chrono::seconds call_wait{60};

} // namespace

cluster_runtime::cluster_runtime(caf::actor_system& sys, std::shared_ptr<sandbox_runtime> local,
                                 node_capacity local_capacity,
                                 std::shared_ptr<tunnel_front> front)
  : sys_(sys), local_(std::move(local)), front_(std::move(front)) {
  local_node_.capacity = std::move(local_capacity);
  local_node_.connected = true;
}

template <class R, class... Ts>
result<R> cluster_runtime::ask(const worker_actor& worker, std::chrono::seconds wait,
                               Ts&&... xs) const {
  caf::scoped_actor self{sys_};
  result<R> out = failure{503, "no reply from the worker node"};
  self->request(worker, wait, std::forward<Ts>(xs)...)
    .receive([&](R& r) { out = std::move(r); },
             [&](caf::error& e) {
               // The node's own failures keep their status; CAF's (a node
               // gone, no answer in time) mean the node is unavailable.
               auto f = from_error(e);
               if (e == caf::sec::request_receiver_down || e == caf::sec::request_timeout
                   || f.status == 500)
                 f = {503, "worker node unavailable: " + f.message};
               out = std::move(f);
             });
  return out;
}

result<std::optional<worker_actor>> cluster_runtime::route(const std::string& id) const {
  std::lock_guard<std::mutex> lock{mtx_};
  auto p = placed_.find(id);
  if (p == placed_.end() || p->second.node.empty())
    return std::optional<worker_actor>{};
  auto n = nodes_.find(p->second.node);
  if (n == nodes_.end() || !n->second.connected)
    return failure{503, "worker node " + p->second.node + " is not connected"};
  return std::optional<worker_actor>{n->second.worker};
}

template <class... Ts>
status cluster_runtime::ask_status(const std::string& id, std::chrono::seconds wait,
                                   Ts&&... xs) {
  auto where = route(id);
  if (!where)
    return where.error();
  auto r = ask<bool>(**where, wait, std::forward<Ts>(xs)...);
  if (!r)
    return r.error();
  return success();
}

std::string cluster_runtime::choose(const container_spec& spec) const {
  // Allocated memory counts what this node placed (instant, no report lag);
  // the node's own report caps it by what the host really has free.
  std::map<std::string, int64_t> allocated;
  std::map<std::string, uint32_t> count;
  for (auto& [id, p] : placed_) {
    allocated[p.node] += p.memory_mb;
    ++count[p.node];
  }
  auto score = [&](const std::string& name, const node& n) {
    auto left = n.capacity.memory_mb - allocated[name];
    return std::min<int64_t>(left, n.capacity.available_mb);
  };
  std::string best; // this node unless a worker has more room
  auto best_score = local_node_.draining ? INT64_MIN : score("", local_node_);
  auto best_count = count[""];
  // Only a catalogue template without layers runs elsewhere.
  if (spec.template_name.empty() || !spec.layers.empty())
    return best;
  for (auto& [name, n] : nodes_) {
    if (!n.connected || n.draining)
      continue;
    auto& built = n.capacity.templates;
    if (std::find(built.begin(), built.end(), spec.template_name) == built.end())
      continue;
    auto s = score(name, n);
    if (s > best_score || (s == best_score && count[name] < best_count)) {
      best = name;
      best_score = s;
      best_count = count[name];
    }
  }
  return best;
}

status cluster_runtime::create(const container_spec& spec, bool fresh) {
  std::string where;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    auto p = placed_.find(spec.id);
    if (p == placed_.end()) {
      if (!fresh)
        return not_found("sandbox " + spec.id + " is placed on no node");
      where = choose(spec);
      placed_[spec.id] = {where, spec.memory_mb};
    } else {
      where = p->second.node;
    }
  }
  if (where.empty())
    return local_->create(spec, fresh);
  auto worker = route(spec.id);
  if (!worker)
    return worker.error();
  auto remote = spec;
  remote.lower_rootfs.clear(); // the worker's own copy of the template
  auto r = ask<bool>(**worker, create_wait, atom::create::value, std::move(remote), fresh);
  if (!r) {
    if (fresh)
      forget(spec.id);
    return r.error();
  }
  tunnel_back_actor back;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    auto n = nodes_.find(where);
    if (n == nodes_.end() || !n->second.connected)
      return failure{503, "worker node " + where + " was lost"};
    back = n->second.back;
  }
  // Already exposed: a cold resume boots the same sandbox again.
  if (auto s = front_->expose(spec.id, back); !s && s.error().status != 409) {
    spdlog::error("sandbox {}: no tunnel to node {}: {}", spec.id, where, s.error().message);
    return s.error();
  }
  return success();
}

status cluster_runtime::stop(const std::string& id) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->stop(id);
  return ask_status(id, call_wait, atom::stop::value, id);
}

status cluster_runtime::pause(const std::string& id) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->pause(id);
  return ask_status(id, call_wait, atom::pause::value, id);
}

status cluster_runtime::resume(const std::string& id) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->resume(id);
  return ask_status(id, call_wait, atom::resume::value, id);
}

void cluster_runtime::forget(const std::string& id) {
  bool remote = false;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    auto p = placed_.find(id);
    if (p == placed_.end())
      return;
    remote = !p->second.node.empty();
    placed_.erase(p);
  }
  if (remote)
    front_->withdraw(id);
}

status cluster_runtime::destroy(const std::string& id) {
  auto where = route(id);
  if (!where)
    return where.error();
  auto s = *where ? ask_status(id, call_wait, atom::remove::value, id) : local_->destroy(id);
  if (s)
    forget(id);
  return s;
}

status cluster_runtime::terminate(const std::string& id) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->terminate(id);
  return ask_status(id, call_wait, atom::kill::value, id);
}

status cluster_runtime::reclaim(const std::string& id) {
  auto where = route(id);
  if (!where)
    return where.error();
  auto s = *where ? ask_status(id, call_wait, atom::reclaim::value, id) : local_->reclaim(id);
  if (s)
    forget(id);
  return s;
}

status cluster_runtime::update_network(const std::string& id, const network_policy& policy) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->update_network(id, policy);
  return ask_status(id, call_wait, atom::network::value, id, policy);
}

result<std::string> cluster_runtime::state(const std::string& id) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->state(id);
  return ask<std::string>(**where, call_wait, atom::get::value, id);
}

result<std::vector<std::string>> cluster_runtime::list() {
  return local_->list();
}

status cluster_runtime::copy_layer(const std::string& id, const std::string& dest) {
  if (!node_of(id).empty())
    return failure{501, "snapshots of a sandbox on a worker node are not supported yet"};
  return local_->copy_layer(id, dest);
}

std::string cluster_runtime::agent_socket(const std::string& id) const {
  if (node_of(id).empty())
    return local_->agent_socket(id);
  return front_->path(id);
}

result<container_sample> cluster_runtime::sample(const std::string& id, int cpu_count,
                                                 int memory_mb, int disk_size_mb) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->sample(id, cpu_count, memory_mb, disk_size_mb);
  return ask<container_sample>(**where, call_wait, atom::metrics::value, id,
                               static_cast<int32_t>(cpu_count), static_cast<int32_t>(memory_mb),
                               static_cast<int32_t>(disk_size_mb));
}

std::string cluster_runtime::node_of(const std::string& id) const {
  std::lock_guard<std::mutex> lock{mtx_};
  auto p = placed_.find(id);
  return p == placed_.end() ? std::string{} : p->second.node;
}

void cluster_runtime::adopt(const std::string& id, const std::string& node) {
  std::lock_guard<std::mutex> lock{mtx_};
  if (node == local_node_.capacity.node) {
    placed_[id] = {"", 0};
    return;
  }
  placed_[id] = {node, 0};
  auto& n = nodes_[node]; // known from the log, not connected until it joins
  n.capacity.node = node;
}

status cluster_runtime::add_node(const node_capacity& cap, worker_actor worker,
                                 tunnel_back_actor back) {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    if (cap.node == local_node_.capacity.node)
      return conflict("node name " + cap.node + " is the control node's");
    auto& n = nodes_[cap.node];
    if (n.connected)
      return conflict("a node named " + cap.node + " is already connected");
    n.capacity = cap;
    n.worker = std::move(worker);
    n.back = back;
    n.connected = true;
    for (auto& [id, p] : placed_)
      if (p.node == cap.node)
        ids.push_back(id);
  }
  for (auto& id : ids)
    if (auto s = front_->expose(id, back); !s && s.error().status != 409)
      spdlog::error("sandbox {}: no tunnel to node {}: {}", id, cap.node, s.error().message);
  return success();
}

void cluster_runtime::update_node(const node_capacity& cap) {
  std::lock_guard<std::mutex> lock{mtx_};
  auto n = nodes_.find(cap.node);
  if (n != nodes_.end() && n->second.connected)
    n->second.capacity = cap;
}

std::vector<std::pair<std::string, worker_actor>> cluster_runtime::connected_workers() const {
  std::lock_guard<std::mutex> lock{mtx_};
  std::vector<std::pair<std::string, worker_actor>> out;
  for (auto& [name, n] : nodes_)
    if (n.connected)
      out.emplace_back(name, n.worker);
  return out;
}

std::optional<std::string> cluster_runtime::node_named_by(const caf::actor_addr& worker) const {
  std::lock_guard<std::mutex> lock{mtx_};
  for (auto& [name, n] : nodes_)
    if (n.connected && n.worker.address() == worker)
      return name;
  return std::nullopt;
}

std::vector<std::string> cluster_runtime::lose_node(const std::string& node) {
  std::vector<std::string> ids;
  tunnel_back_actor back;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    auto n = nodes_.find(node);
    if (n == nodes_.end())
      return ids;
    back = n->second.back;
    n->second.connected = false;
    n->second.worker = nullptr;
    for (auto it = placed_.begin(); it != placed_.end();) {
      if (it->second.node == node) {
        ids.push_back(it->first);
        it = placed_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& id : ids)
    front_->withdraw(id);
  if (back)
    front_->lost(back);
  return ids;
}

std::vector<std::string> cluster_runtime::placed_on(const std::string& node) const {
  std::lock_guard<std::mutex> lock{mtx_};
  std::vector<std::string> ids;
  for (auto& [id, p] : placed_)
    if (p.node == node)
      ids.push_back(id);
  return ids;
}

std::vector<std::string> cluster_runtime::absent_nodes() const {
  std::lock_guard<std::mutex> lock{mtx_};
  std::set<std::string> names;
  for (auto& [id, p] : placed_)
    if (!p.node.empty())
      if (auto n = nodes_.find(p.node); n == nodes_.end() || !n->second.connected)
        names.insert(p.node);
  return {names.begin(), names.end()};
}

status cluster_runtime::set_draining(const std::string& node, bool draining) {
  std::lock_guard<std::mutex> lock{mtx_};
  if (node == local_node_.capacity.node) {
    local_node_.draining = draining;
    return success();
  }
  auto n = nodes_.find(node);
  if (n == nodes_.end())
    return not_found("no node named " + node);
  n->second.draining = draining;
  return success();
}

std::vector<node_view> cluster_runtime::nodes() const {
  std::lock_guard<std::mutex> lock{mtx_};
  auto view = [&](const std::string& key, const node& n, bool local) {
    node_view v;
    v.capacity = n.capacity;
    v.local = local;
    v.connected = n.connected;
    v.draining = n.draining;
    for (auto& [id, p] : placed_)
      if (p.node == key) {
        ++v.sandboxes;
        v.allocated_mb += p.memory_mb;
      }
    return v;
  };
  std::vector<node_view> out{view("", local_node_, true)};
  for (auto& [name, n] : nodes_)
    out.push_back(view(name, n, false));
  return out;
}

} // namespace sandboxd
