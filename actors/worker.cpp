#include "actors/worker.hpp"

#include <unistd.h>

#include <fstream>

#include "actors/blocking.hpp"
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
        // Only what this node holds: its own build of a catalogue template.
        if (!spec.layers.empty() || spec.template_name.empty())
          return to_error(bad_request("a worker runs catalogue templates only"));
        auto tpl = catalog->find(spec.template_name);
        if (!tpl || tpl->user || !catalog->is_built(*tpl))
          return to_error(conflict("template " + spec.template_name
                                   + " is not built on this node"));
        spec.lower_rootfs = catalog->rootfs(*tpl);
        return run_status(self, [rt, spec, fresh] { return rt->create(spec, fresh); });
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
