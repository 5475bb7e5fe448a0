#include "actors/worker.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "actors/blocking.hpp"
#include "core/ids.hpp"
#include "runtime/sandbox_runtime.hpp"
#include "runtime/templates.hpp"

namespace sandboxd {

namespace {

struct worker_state {
  std::shared_ptr<sandbox_runtime> rt;
  std::shared_ptr<const template_catalog> catalog;
  static inline const char* name = "worker";
};

using worker_self = worker_actor::stateful_pointer<worker_state>;

// MemAvailable from /proc/meminfo, in MiB (0 when unreadable).
int64_t available_mb() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:")
      return kb / 1024;
  return 0;
}

// A runtime call on the executor, answered as a bool (its failure as an
// error keeping its status).
template <class F>
caf::result<bool> run_status(worker_self self, F f) {
  auto rp = self->make_response_promise<bool>();
  run_blocking(self, false, [f]() -> result<bool> {
    auto s = f();
    if (!s)
      return s.error();
    return true;
  }, deliver_to(rp));
  return rp;
}

// This node's path for a layer the control node names by its own path: the
// same snapshot id under this node's layers root, which must hold it.
result<std::string> own_layer(const sandbox_runtime& rt, const std::string& control_path) {
  auto id = std::filesystem::path{control_path}.filename().string();
  if (!is_valid_sandbox_id(id))
    return bad_request("bad snapshot layer " + control_path);
  auto dir = rt.layer_dir(id);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return conflict("snapshot layer " + id + " is not on this node");
  return dir;
}

// The snapshot layers under the layers root (a copy under way, *.copying,
// is not one yet).
result<std::vector<std::string>> layer_ids(const sandbox_runtime& rt) {
  std::vector<std::string> ids;
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator(rt.layers_root(), ec)) {
    auto name = entry.path().filename().string();
    if (is_valid_sandbox_id(name))
      ids.push_back(name);
  }
  if (ec && ec != std::errc::no_such_file_or_directory)
    return internal_error("cannot list " + rt.layers_root() + ": " + ec.message());
  return ids;
}

} // namespace

node_capacity measure_node(const std::string& name, sandbox_runtime& rt,
                           const template_catalog& catalog) {
  node_capacity c;
  c.node = name;
  c.cpus = static_cast<int32_t>(::sysconf(_SC_NPROCESSORS_ONLN));
  c.memory_mb = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES))
                * static_cast<int64_t>(::sysconf(_SC_PAGE_SIZE)) / (1 << 20);
  c.available_mb = available_mb();
  if (auto ids = rt.list())
    c.containers = static_cast<uint32_t>(ids->size());
  for (auto& t : catalog.all())
    if (!t.user && catalog.is_built(t))
      c.templates.push_back(t.name);
  return c;
}

worker_actor spawn_worker(caf::actor_system& sys, std::shared_ptr<sandbox_runtime> rt,
                          std::shared_ptr<const template_catalog> catalog) {
  return sys.spawn([rt, catalog](worker_self self) -> worker_actor::behavior_type {
    self->state.rt = rt;
    self->state.catalog = catalog;
    return {
      [=](atom::create, container_spec& spec, bool fresh) -> caf::result<bool> {
        // Only what this node holds: its own build of a catalogue template,
        // and its own layers of the snapshots taken here.
        if (spec.template_name.empty())
          return to_error(bad_request("a worker runs catalogue templates only"));
        auto tpl = catalog->find(spec.template_name);
        if (!tpl || tpl->user || !catalog->is_built(*tpl))
          return to_error(conflict("template " + spec.template_name
                                   + " is not built on this node"));
        spec.lower_rootfs = catalog->rootfs(*tpl);
        return run_status(self, [rt, spec, fresh]() -> status {
          auto here = spec;
          for (auto& layer : here.layers) {
            auto mine = own_layer(*rt, layer);
            if (!mine)
              return mine.error();
            layer = *mine;
          }
          return rt->create(here, fresh);
        });
      },
      [=](atom::stop, const std::string& id) {
        return run_status(self, [rt, id] { return rt->stop(id); });
      },
      [=](atom::pause, const std::string& id) {
        return run_status(self, [rt, id] { return rt->pause(id); });
      },
      [=](atom::resume, const std::string& id) {
        return run_status(self, [rt, id] { return rt->resume(id); });
      },
      [=](atom::remove, const std::string& id) {
        return run_status(self, [rt, id] { return rt->destroy(id); });
      },
      [=](atom::kill, const std::string& id) {
        return run_status(self, [rt, id] { return rt->terminate(id); });
      },
      [=](atom::reclaim, const std::string& id) {
        return run_status(self, [rt, id] { return rt->reclaim(id); });
      },
      [=](atom::network, const std::string& id, const network_policy& policy) {
        return run_status(self, [rt, id, policy] { return rt->update_network(id, policy); });
      },
      [=](atom::get, const std::string& id) -> caf::result<std::string> {
        auto rp = self->make_response_promise<std::string>();
        run_blocking(self, false, [rt, id] { return rt->state(id); }, deliver_to(rp));
        return rp;
      },
      [=](atom::list) -> caf::result<std::vector<std::string>> {
        auto rp = self->make_response_promise<std::vector<std::string>>();
        run_blocking(self, false, [rt] { return rt->list(); }, deliver_to(rp));
        return rp;
      },
      [=](atom::metrics, const std::string& id, int32_t cpu, int32_t mem,
          int32_t disk) -> caf::result<container_sample> {
        auto rp = self->make_response_promise<container_sample>();
        run_blocking(self, false, [=] { return rt->sample(id, cpu, mem, disk); },
                     deliver_to(rp));
        return rp;
      },
      [=](atom::snapshot, const std::string& id,
          const std::string& snapshot_id) -> caf::result<bool> {
        if (!is_valid_sandbox_id(snapshot_id))
          return to_error(bad_request("bad snapshot id"));
        return run_status(self, [rt, id, snapshot_id] {
          return rt->copy_layer(id, rt->layer_dir(snapshot_id));
        });
      },
      [=](atom::remove, atom::snapshot, const std::string& snapshot_id) -> caf::result<bool> {
        if (!is_valid_sandbox_id(snapshot_id))
          return to_error(bad_request("bad snapshot id"));
        return run_status(self, [rt, snapshot_id] { return rt->remove_layer(snapshot_id, ""); });
      },
      [=](atom::list, atom::snapshot) -> caf::result<std::vector<std::string>> {
        auto rp = self->make_response_promise<std::vector<std::string>>();
        run_blocking(self, false, [rt] { return layer_ids(*rt); }, deliver_to(rp));
        return rp;
      },
      [=](atom::stats) -> caf::result<node_capacity> {
        auto rp = self->make_response_promise<node_capacity>();
        run_blocking(self, false,
                     [rt, catalog]() -> result<node_capacity> {
                       return measure_node("", *rt, *catalog);
                     },
                     deliver_to(rp));
        return rp;
      },
    };
  });
}

} // namespace sandboxd
