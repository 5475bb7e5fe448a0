#include "actors/cluster_gate.hpp"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "actors/blocking.hpp"
#include "actors/cluster_runtime.hpp"
#include "storage/store.hpp"

namespace sandboxd {

namespace {

// How often each worker is asked for its capacity (placement's free memory).
constexpr std::chrono::seconds report_every{5};

struct gate_state {
  cluster_gate_config cfg;
  static inline const char* name = "cluster-gate";
};

using gate_self = cluster_gate_actor::stateful_pointer<gate_state>;

void lose(gate_self self, const std::string& node, const std::string& why) {
  auto ids = self->state.cfg.runtime->lose_node(node);
  spdlog::error("node {} lost ({}): {} sandboxes on it end in error", node, why, ids.size());
  self->send(self->state.cfg.registry, atom::lost::value, node, std::move(ids));
}

// Asks `worker` to remove `what` `id`, which nothing owns (`xs`: the removal
// request after the atom); a failure is logged, the join goes on.
template <class... Ts>
void remove_unowned(gate_self self, const std::string& node, worker_actor worker,
                    const char* what, const std::string& id, Ts... xs) {
  spdlog::warn("node {}: removing {} {}: nothing live owns it", node, what, id);
  self->request(worker, std::chrono::seconds(60), atom::remove::value, xs..., id)
    .then([](bool) {},
          [=](caf::error& e) {
            spdlog::error("node {}: cannot remove {} {}: {}", node, what, id,
                          from_error(e).message);
          });
}

// A joined node's containers that no live sandbox on it owns were left by
// sandboxes that ended while it was away: removed.
void remove_leftovers(gate_self self, const std::string& node, worker_actor worker) {
  self->request(worker, std::chrono::seconds(60), atom::list::value)
    .then(
      [=](const std::vector<std::string>& held) {
        auto placed = self->state.cfg.runtime->placed_on(node);
        std::set<std::string> live{placed.begin(), placed.end()};
        for (auto& id : held)
          if (!live.count(id))
            remove_unowned(self, node, worker, "container", id);
      },
      [=](caf::error& e) {
        spdlog::error("node {}: cannot list its containers: {}", node, from_error(e).message);
      });
}

// A joined node's snapshot layers that no stored snapshot owns (deleted
// while it was away, or left by a failed snapshot) are removed; all are kept
// when some stored snapshot cannot be read.
void remove_leftover_layers(gate_self self, const std::string& node, worker_actor worker) {
  self->request(worker, std::chrono::seconds(60), atom::list::value, atom::snapshot::value)
    .then(
      [=](std::vector<std::string>& held) {
        auto db = self->state.cfg.db;
        auto rt = self->state.cfg.runtime;
        run_blocking(
          self, false,
          [db, rt, node, held]() -> result<std::vector<std::string>> {
            size_t unreadable = 0;
            auto snaps = db->all_snapshots(&unreadable);
            if (!snaps)
              return snaps.error();
            if (unreadable > 0)
              return internal_error(std::to_string(unreadable)
                                    + " stored snapshots are unreadable: its layers are all kept");
            std::set<std::string> owned;
            for (auto& s : *snaps)
              if (s.node == node)
                owned.insert(s.id);
            std::vector<std::string> garbage;
            for (auto& id : held)
              if (!owned.count(id) && !rt->copied_since_start(id))
                garbage.push_back(id);
            return garbage;
          },
          [=](result<std::vector<std::string>> garbage) {
            if (!garbage) {
              spdlog::error("node {}: {}", node, garbage.error().message);
              return;
            }
            for (auto& id : *garbage)
              remove_unowned(self, node, worker, "snapshot layer", id, atom::snapshot::value);
          });
      },
      [=](caf::error& e) {
        spdlog::error("node {}: cannot list its snapshot layers: {}", node,
                      from_error(e).message);
      });
}

} // namespace

bool valid_node_name(const std::string& name) {
  return !name.empty() && name.size() <= 63 && name[0] != '-'
         && std::all_of(name.begin(), name.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
            });
}

cluster_gate_actor spawn_cluster_gate(caf::actor_system& sys, cluster_gate_config cfg) {
  return sys.spawn([cfg](gate_self self) -> cluster_gate_actor::behavior_type {
    self->state.cfg = cfg;
    self->set_down_handler([=](caf::down_msg& msg) {
      if (auto node = self->state.cfg.runtime->node_named_by(msg.source))
        lose(self, *node, "its connection ended: " + caf::to_string(msg.reason));
    });
    self->delayed_send(self, cfg.rejoin_grace, atom::timeout::value);
    self->send(self, atom::sample::value);
    return {
      [=](atom::join, node_capacity& cap, worker_actor& worker,
          tunnel_back_actor& back) -> caf::result<bool> {
        if (!valid_node_name(cap.node))
          return to_error(bad_request("a node name is 1 to 63 of a-z, 0-9 and '-'"));
        if (!worker || !back)
          return to_error(bad_request("a node joins with its runtime and its tunnel"));
        auto name = cap.node;
        if (auto s = self->state.cfg.runtime->add_node(cap, worker, back); !s) {
          spdlog::warn("node {} refused: {}", name, s.error().message);
          return to_error(s.error());
        }
        self->monitor(worker);
        auto ids = self->state.cfg.runtime->placed_on(name);
        spdlog::info("node {} joined ({} CPUs, {} MiB, templates: {}); {} sandboxes on it", name,
                     cap.cpus, cap.memory_mb, cap.templates.size(), ids.size());
        remove_leftovers(self, name, worker);
        remove_leftover_layers(self, name, worker);
        if (!ids.empty())
          self->send(self->state.cfg.registry, atom::reconcile::value, name, std::move(ids));
        return true;
      },
      [=](atom::sample) {
        for (auto& [name, worker] : self->state.cfg.runtime->connected_workers())
          self->request(worker, report_every, atom::stats::value)
            .then(
              [=, name = name](node_capacity& cap) {
                cap.node = name; // a node reports for itself only
                self->state.cfg.runtime->update_node(cap);
              },
              [](caf::error&) {}); // a lost node's monitor says so
        if (auto measure = self->state.cfg.measure_local)
          run_blocking(self, false, [measure]() -> result<node_capacity> { return measure(); },
                       [=](result<node_capacity> cap) {
                         if (cap)
                           self->state.cfg.runtime->refresh_local(*cap);
                       });
        self->delayed_send(self, report_every, atom::sample::value);
      },
      [=](atom::timeout) {
        for (auto& node : self->state.cfg.runtime->absent_nodes())
          lose(self, node, "it did not rejoin after the control node started");
      },
    };
  });
}

} // namespace sandboxd
