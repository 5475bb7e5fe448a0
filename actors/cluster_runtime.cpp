#include "actors/cluster_runtime.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

#include "actors/tunnel.hpp"

namespace sandboxd {

namespace {

// A create waits for the worker's container and agent (seconds under load);
// reads are quick on a healthy node; a node that let one call time out is
// not asked again for a while (see node::silent_until).
constexpr std::chrono::seconds create_wait{120};
constexpr std::chrono::seconds call_wait{30};
constexpr std::chrono::seconds read_wait{10};
constexpr std::chrono::seconds silent_pause{10};
// A snapshot copies a sandbox's whole writable layer (cp -a, up to 10 min).
constexpr std::chrono::seconds copy_wait{600};

} // namespace

cluster_runtime::cluster_runtime(caf::actor_system& sys, std::shared_ptr<sandbox_runtime> local,
                                 node_capacity local_capacity,
                                 std::shared_ptr<tunnel_front> front)
  : sys_(sys), local_(std::move(local)), front_(std::move(front)) {
  local_node_.capacity = std::move(local_capacity);
  local_node_.connected = true;
}

template <class R, class... Ts>
result<R> cluster_runtime::ask(const target& to, std::chrono::seconds wait, Ts&&... xs) {
  caf::scoped_actor self{sys_};
  result<R> out = failure{503, "no reply from worker node " + to.node};
  bool timed_out = false;
  self->request(to.worker, wait, std::forward<Ts>(xs)...)
    .receive([&](R& r) { out = std::move(r); },
             [&](caf::error& e) {
               // The node's own failures keep their status; CAF's (a node
               // gone, no answer in time) mean the node is unavailable.
               auto f = from_error(e);
               timed_out = e == caf::sec::request_timeout;
               if (timed_out || e == caf::sec::request_receiver_down || f.status == 500)
                 f = {503, "worker node " + to.node + " unavailable: " + f.message};
               out = std::move(f);
             });
  if (timed_out) {
    std::lock_guard<std::mutex> lock{mtx_};
    if (auto n = nodes_.find(to.node); n != nodes_.end())
      n->second.silent_until = std::chrono::steady_clock::now() + silent_pause;
  }
  return out;
}

result<std::optional<cluster_runtime::target>>
cluster_runtime::route(const std::string& id) const {
  std::lock_guard<std::mutex> lock{mtx_};
  auto p = placed_.find(id);
  if (p == placed_.end() || p->second.node.empty())
    return std::optional<target>{};
  auto& name = p->second.node;
  if (p->second.lost)
    return failure{503, "the node of sandbox " + id + " (" + name + ") was lost"};
  auto n = nodes_.find(name);
  if (n == nodes_.end() || !n->second.connected)
    return failure{503, "worker node " + name + " is not connected"};
  if (std::chrono::steady_clock::now() < n->second.silent_until)
    return failure{503, "worker node " + name + " is not answering"};
  return std::optional<target>{target{name, n->second.worker}};
}

template <class... Ts>
status cluster_runtime::ask_status(const target& to, std::chrono::seconds wait, Ts&&... xs) {
  auto r = ask<bool>(to, wait, std::forward<Ts>(xs)...);
  if (!r)
    return r.error();
  return success();
}

std::string cluster_runtime::choose(const container_spec& spec) const {
  // Room on a node: its memory less what this node placed there, and what
  // it last reported free less what was placed there since.
  std::map<std::string, int64_t> allocated;
  std::map<std::string, uint32_t> count;
  for (auto& [id, p] : placed_)
    if (!p.lost) {
      allocated[p.node] += p.memory_mb;
      ++count[p.node];
    }
  auto room = [&](const std::string& name, const node& n) {
    return std::min<int64_t>(n.capacity.memory_mb - allocated[name],
                             n.capacity.available_mb - n.placed_since_report_mb);
  };
  // Made from a snapshot: where its layers are (its template was built
  // there). An org's template: this node only.
  if (!spec.layers.empty())
    return spec.layers_node;
  std::string best; // this node unless a worker has more room
  // An org's template, volumes (their files are this node's) or egress
  // rules (the org's secrets are this node's): here.
  if (spec.template_name.empty() || !spec.volumes.empty() || !spec.network.rules.empty())
    return best;
  auto best_room = local_node_.draining ? INT64_MIN : room("", local_node_);
  auto best_count = count[""];
  auto now = std::chrono::steady_clock::now();
  for (auto& [name, n] : nodes_) {
    if (!n.connected || n.draining || now < n.silent_until)
      continue;
    auto& built = n.capacity.templates;
    if (std::find(built.begin(), built.end(), spec.template_name) == built.end())
      continue;
    auto r = room(name, n);
    if (r > best_room || (r == best_room && count[name] < best_count)) {
      best = name;
      best_room = r;
      best_count = count[name];
    }
  }
  return best;
}

status cluster_runtime::create(const container_spec& spec, bool fresh) {
  {
    std::lock_guard<std::mutex> lock{mtx_};
    if (!placed_.count(spec.id)) {
      // Placed nowhere and not new: a sandbox of before the cluster, here.
      auto where = fresh ? choose(spec) : std::string{};
      placed_[spec.id] = {where, spec.memory_mb};
      if (auto n = nodes_.find(where); n != nodes_.end())
        n->second.placed_since_report_mb += spec.memory_mb;
      else if (where.empty())
        local_node_.placed_since_report_mb += spec.memory_mb;
    }
  }
  auto where = route(spec.id);
  if (!where)
    return where.error();
  if (!*where) {
    auto s = local_->create(spec, fresh);
    if (!s && fresh)
      forget(spec.id);
    return s;
  }
  auto to = **where;
  auto remote = spec;
  remote.lower_rootfs.clear(); // the worker's own copy of the template
  // and its own layers: the worker finds them by their ids (the last
  // component of our paths for them).
  auto r = ask<bool>(to, create_wait, atom::create::value, std::move(remote), fresh);
  if (!r) {
    if (fresh) {
      forget(spec.id);
      // It may still finish there after we gave up: take it back (else the
      // node's next join would).
      if (r.error().status == 503)
        caf::anon_send(to.worker, atom::remove::value, spec.id);
    }
    return r.error();
  }
  tunnel_back_actor back;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    auto n = nodes_.find(to.node);
    if (n == nodes_.end() || !n->second.connected)
      return failure{503, "worker node " + to.node + " was lost"};
    back = n->second.back;
  }
  // Already exposed: a cold resume boots the same sandbox again.
  if (auto s = front_->expose(spec.id, back); !s && s.error().status != 409) {
    spdlog::error("sandbox {}: no tunnel to node {}: {}", spec.id, to.node, s.error().message);
    return s.error();
  }
  return success();
}

template <class Local, class Atom>
status cluster_runtime::either(const std::string& id, Local local, Atom op) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local();
  return ask_status(**where, call_wait, op, id);
}

status cluster_runtime::stop(const std::string& id) {
  return either(id, [&] { return local_->stop(id); }, atom::stop::value);
}

status cluster_runtime::pause(const std::string& id) {
  return either(id, [&] { return local_->pause(id); }, atom::pause::value);
}

status cluster_runtime::resume(const std::string& id) {
  return either(id, [&] { return local_->resume(id); }, atom::resume::value);
}

void cluster_runtime::forget(const std::string& id) {
  bool tunnelled = false;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    auto p = placed_.find(id);
    if (p == placed_.end())
      return;
    tunnelled = !p->second.node.empty() && !p->second.lost;
    placed_.erase(p);
  }
  if (tunnelled)
    front_->withdraw(id);
}

status cluster_runtime::destroy(const std::string& id) {
  auto s = either(id, [&] { return local_->destroy(id); }, atom::remove::value);
  if (s)
    forget(id);
  return s;
}

status cluster_runtime::terminate(const std::string& id) {
  return either(id, [&] { return local_->terminate(id); }, atom::kill::value);
}

status cluster_runtime::reclaim(const std::string& id) {
  auto s = either(id, [&] { return local_->reclaim(id); }, atom::reclaim::value);
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
  return ask_status(**where, call_wait, atom::network::value, id, policy);
}

result<std::string> cluster_runtime::state(const std::string& id) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->state(id);
  return ask<std::string>(**where, read_wait, atom::get::value, id);
}

result<std::vector<std::string>> cluster_runtime::list() {
  return local_->list();
}

status cluster_runtime::copy_layer(const std::string& id, const std::string& dest) {
  auto where = route(id);
  if (!where)
    return where.error();
  if (!*where)
    return local_->copy_layer(id, dest);
  auto snapshot_id = std::filesystem::path{dest}.filename().string();
  {
    std::lock_guard<std::mutex> lock{mtx_};
    copied_.insert(snapshot_id);
  }
  return ask_status(**where, copy_wait, atom::snapshot::value, id, snapshot_id);
}

status cluster_runtime::remove_layer(const std::string& snapshot_id, const std::string& node) {
  bool here = node.empty();
  std::optional<worker_actor> worker;
  {
    std::lock_guard<std::mutex> lock{mtx_};
    here = here || node == local_node_.capacity.node;
    copied_.erase(snapshot_id);
    if (auto n = nodes_.find(node); !here && n != nodes_.end() && n->second.connected)
      worker = n->second.worker;
  }
  if (here)
    return local_->remove_layer(snapshot_id, "");
  if (worker) {
    auto s = ask_status(target{node, *worker}, call_wait, atom::remove::value,
                        atom::snapshot::value, snapshot_id);
    if (s || s.error().status != 503)
      return s;
  }
  // Not there now: the node drops layers no snapshot owns when it joins.
  spdlog::warn("snapshot {}: its layer on node {} goes when the node joins again", snapshot_id,
               node);
  return success();
}

bool cluster_runtime::copied_since_start(const std::string& snapshot_id) const {
  std::lock_guard<std::mutex> lock{mtx_};
  return copied_.count(snapshot_id) > 0;
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
  return ask<container_sample>(**where, read_wait, atom::metrics::value, id,
                               static_cast<int32_t>(cpu_count), static_cast<int32_t>(memory_mb),
                               static_cast<int32_t>(disk_size_mb));
}

std::string cluster_runtime::node_of(const std::string& id) const {
  std::lock_guard<std::mutex> lock{mtx_};
  auto p = placed_.find(id);
  return p == placed_.end() ? std::string{} : p->second.node;
}

void cluster_runtime::adopt(const std::string& id, const std::string& node, int memory_mb) {
  std::lock_guard<std::mutex> lock{mtx_};
  if (node.empty() || node == local_node_.capacity.node) {
    placed_[id] = {"", memory_mb};
    return;
  }
  placed_[id] = {node, memory_mb};
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
    n.placed_since_report_mb = 0;
    n.silent_until = {};
    for (auto it = placed_.begin(); it != placed_.end();) {
      if (it->second.node != cap.node) {
        ++it;
      } else if (it->second.lost) {
        it = placed_.erase(it); // ended; what it left there goes at this join
      } else {
        ids.push_back(it->first);
        ++it;
      }
    }
  }
  for (auto& id : ids)
    if (auto s = front_->expose(id, back); !s && s.error().status != 409)
      spdlog::error("sandbox {}: no tunnel to node {}: {}", id, cap.node, s.error().message);
  return success();
}

void cluster_runtime::update_node(const node_capacity& cap) {
  std::lock_guard<std::mutex> lock{mtx_};
  auto n = nodes_.find(cap.node);
  if (n != nodes_.end() && n->second.connected) {
    n->second.capacity = cap;
    n->second.placed_since_report_mb = 0;
  }
}

void cluster_runtime::refresh_local(const node_capacity& cap) {
  std::lock_guard<std::mutex> lock{mtx_};
  local_node_.capacity = cap;
  local_node_.placed_since_report_mb = 0;
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
    for (auto& [id, p] : placed_)
      if (p.node == node && !p.lost) {
        p.lost = true;
        ids.push_back(id);
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
    if (p.node == node && !p.lost)
      ids.push_back(id);
  return ids;
}

std::vector<std::string> cluster_runtime::absent_nodes() const {
  std::lock_guard<std::mutex> lock{mtx_};
  std::set<std::string> names;
  for (auto& [id, p] : placed_)
    if (!p.node.empty() && !p.lost)
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

std::set<std::string> cluster_runtime::draining() const {
  std::lock_guard<std::mutex> lock{mtx_};
  std::set<std::string> out;
  if (local_node_.draining)
    out.insert(local_node_.capacity.node);
  for (auto& [name, n] : nodes_)
    if (n.draining)
      out.insert(name);
  return out;
}

void cluster_runtime::keep_draining(const std::set<std::string>& names) {
  std::lock_guard<std::mutex> lock{mtx_};
  for (auto& name : names) {
    if (name == local_node_.capacity.node) {
      local_node_.draining = true;
      continue;
    }
    auto& n = nodes_[name]; // not connected until it joins
    n.capacity.node = name;
    n.draining = true;
  }
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
      if (p.node == key && !p.lost) {
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
