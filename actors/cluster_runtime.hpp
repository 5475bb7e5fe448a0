// The control node's runtime when worker nodes may join: places each new
// sandbox on the node with the most memory left unallocated (this node's
// own runtime, or a worker that built the template), then sends every call
// for it there. A worker is driven through its worker_actor over CAF's
// middleman; the data plane reaches its agents through the tunnel, whose
// socket here stands in for the agent's. Called from executor threads and
// from the cluster gate (membership); its tables are guarded by one mutex.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/interfaces.hpp"
#include "runtime/sandbox_runtime.hpp"

namespace sandboxd {

class tunnel_front;

class cluster_runtime final : public sandbox_runtime {
public:
  /// `local`: this node's own runtime, known as `local_capacity.node`.
  cluster_runtime(caf::actor_system& sys, std::shared_ptr<sandbox_runtime> local,
                  node_capacity local_capacity, std::shared_ptr<tunnel_front> front);

  // Membership (the cluster gate is their only caller).

  /// A worker joined; 409 while a node of that name is connected (or it
  /// names this node). Its sandboxes' tunnels open again.
  [[nodiscard]] status add_node(const node_capacity& cap, worker_actor worker,
                                tunnel_back_actor back);
  void update_node(const node_capacity& cap);
  /// This node's own capacity, measured again (the gate's tick).
  void refresh_local(const node_capacity& cap);
  /// Every connected worker, by name.
  std::vector<std::pair<std::string, worker_actor>> connected_workers() const;
  /// The node that `worker` is, if connected.
  std::optional<std::string> node_named_by(const caf::actor_addr& worker) const;
  /// Marks `node` lost with the sandboxes placed on it (returned): their
  /// calls fail (503) from now on, their tunnels close; what they left on the
  /// node goes when it joins again.
  std::vector<std::string> lose_node(const std::string& node);
  /// Live sandboxes placed on `node`.
  std::vector<std::string> placed_on(const std::string& node) const;
  /// Nodes the log placed sandboxes on that are not connected.
  std::vector<std::string> absent_nodes() const;
  [[nodiscard]] status set_draining(const std::string& node, bool draining);
  /// The drained nodes' names (kept in the store by the caller).
  std::set<std::string> draining() const;
  /// At start: the nodes drained before, joined or not.
  void keep_draining(const std::set<std::string>& names);
  std::vector<node_view> nodes() const;

  // The sandbox_runtime interface (documented there).
  status create(const container_spec& spec, bool fresh = true) override;
  status stop(const std::string& id) override;
  status pause(const std::string& id) override;
  status resume(const std::string& id) override;
  status destroy(const std::string& id) override;
  status terminate(const std::string& id) override;
  status reclaim(const std::string& id) override;
  status update_network(const std::string& id, const network_policy& policy) override;
  result<std::string> state(const std::string& id) override;
  /// This node's own containers: each worker's are reconciled when it joins.
  result<std::vector<std::string>> list() override;
  /// On the sandbox's node: a worker keeps the layer under its own layers
  /// root, by the snapshot id (the last component of `dest`).
  status copy_layer(const std::string& id, const std::string& dest) override;
  std::string layers_root() const override { return local_->layers_root(); }
  /// On an absent node the layer stays until it joins (success, logged).
  status remove_layer(const std::string& snapshot_id, const std::string& node) override;
  /// Whether this node copied the layer of `snapshot_id` to a worker since
  /// it started and did not remove it: its snapshot may not be stored yet.
  bool copied_since_start(const std::string& snapshot_id) const;
  std::string agent_socket(const std::string& id) const override;
  result<container_sample> sample(const std::string& id, int cpu_count, int memory_mb,
                                  int disk_size_mb) override;
  size_t ready_disks() const override { return local_->ready_disks(); }
  bool disks_short() const override { return local_->disks_short(); }
  status make_ready_disk() override { return local_->make_ready_disk(); }
  std::string node_of(const std::string& id) const override;
  void adopt(const std::string& id, const std::string& node, int memory_mb) override;

private:
  struct node {
    node_capacity capacity;
    worker_actor worker;
    tunnel_back_actor back;
    bool connected = false;
    bool draining = false;
    int64_t placed_since_report_mb = 0; // not yet in capacity.available_mb
    // A call that timed out: calls fail at once until then, so a frozen
    // node holds no executor thread for long.
    std::chrono::steady_clock::time_point silent_until{};
  };
  struct placement {
    std::string node; // empty: this node
    int memory_mb = 0;
    bool lost = false; // its node was lost: calls fail, node_of still names it
  };
  // A worker to call: its name and handle.
  struct target {
    std::string node;
    worker_actor worker;
  };
  // Where sandbox `id` runs: nullopt for this node (also an id placed
  // nowhere: a sandbox of before the cluster); a worker; or 503 when its node
  // is lost, not connected or not answering.
  result<std::optional<target>> route(const std::string& id) const;
  // Picks the node for a new sandbox (under mtx_).
  std::string choose(const container_spec& spec) const;
  // One request to a worker, waiting at most `wait`.
  template <class R, class... Ts>
  result<R> ask(const target& to, std::chrono::seconds wait, Ts&&... xs);
  // A call that returns bool on the worker, as a status.
  template <class... Ts>
  status ask_status(const target& to, std::chrono::seconds wait, Ts&&... xs);
  // Call `op` (id) on the sandbox's worker, or `local()` here.
  template <class Local, class Atom>
  status either(const std::string& id, Local local, Atom op);
  // A placement's end (destroyed, or its create failed).
  void forget(const std::string& id);

  caf::actor_system& sys_;
  std::shared_ptr<sandbox_runtime> local_;
  std::shared_ptr<tunnel_front> front_;
  mutable std::mutex mtx_;
  node local_node_;
  std::map<std::string, node> nodes_;          // workers, by name
  std::map<std::string, placement> placed_;    // sandbox id → where
  std::set<std::string> copied_;               // snapshot layers copied to workers
};

} // namespace sandboxd
