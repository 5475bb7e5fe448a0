// A container runtime without containers, for the actor tests: containers
// are a map of states, every call is recorded, and any call can be made to
// fail.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "runtime/sandbox_runtime.hpp"

namespace sandboxd {

// Called from executor threads on the real scheduler, hence the lock.
class fake_runtime final : public sandbox_runtime {
public:
  explicit fake_runtime(std::string dir) : dir_(std::move(dir)) {}

  status create(const container_spec& spec, bool) override {
    return change("create", spec.id, "running");
  }
  status stop(const std::string& id) override { return change("stop", id, "stopped"); }
  status pause(const std::string& id) override { return change("pause", id, "paused"); }
  status resume(const std::string& id) override { return change("resume", id, "running"); }
  status destroy(const std::string& id) override { return change("destroy", id, ""); }
  status terminate(const std::string& id) override { return change("terminate", id, "stopped"); }
  status reclaim(const std::string& id) override { return change("reclaim", id, ""); }
  status update_network(const std::string& id, const network_policy&) override {
    std::lock_guard<std::mutex> guard{mtx_};
    return recorded("update_network", id);
  }
  result<std::string> state(const std::string& id) override {
    std::lock_guard<std::mutex> guard{mtx_};
    auto s = states_.find(id);
    if (s == states_.end())
      return not_found("no container " + id);
    return s->second;
  }
  result<std::vector<std::string>> list() override {
    std::lock_guard<std::mutex> guard{mtx_};
    std::vector<std::string> ids;
    for (auto& [id, _] : states_)
      ids.push_back(id);
    return ids;
  }
  status copy_layer(const std::string& id, const std::string&) override {
    std::lock_guard<std::mutex> guard{mtx_};
    return recorded("copy_layer", id);
  }
  std::string layers_root() const override { return dir_ + "/snapshots"; }
  std::string agent_socket(const std::string& id) const override {
    return dir_ + "/" + id + ".sock"; // nothing listens: agent calls fail
  }
  result<container_sample> sample(const std::string&, int, int, int) override {
    container_sample s;
    s.timestamp_ms = now_ms(); // one sample per instant in the metrics history
    return s;
  }
  size_t ready_disks() const override { return 0; }
  bool disks_short() const override { return false; }
  status make_ready_disk() override { return success(); }

  // What happened to `id`, in order (failed calls included).
  std::vector<std::string> calls(const std::string& id) {
    std::lock_guard<std::mutex> guard{mtx_};
    return calls_[id];
  }
  void set_state(const std::string& id, const std::string& s) {
    std::lock_guard<std::mutex> guard{mtx_};
    states_[id] = s;
  }
  // From now on `call` (e.g. "pause") fails with a 500 saying `why`,
  // leaving the container as it was; until heal(call).
  void fail_on(const std::string& call, const std::string& why) {
    std::lock_guard<std::mutex> guard{mtx_};
    failing_[call] = why;
  }
  void heal(const std::string& call) {
    std::lock_guard<std::mutex> guard{mtx_};
    failing_.erase(call);
  }

private:
  // Records the call; its failure if one was set. Under the lock.
  status recorded(const std::string& call, const std::string& id) {
    calls_[id].push_back(call);
    if (auto f = failing_.find(call); f != failing_.end())
      return failure{500, f->second};
    return success();
  }
  status change(const std::string& call, const std::string& id, const std::string& to) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto s = recorded(call, id); !s)
      return s;
    if (to.empty())
      states_.erase(id);
    else
      states_[id] = to;
    return success();
  }

  std::string dir_;
  std::mutex mtx_;
  std::map<std::string, std::string> states_;
  std::map<std::string, std::vector<std::string>> calls_;
  std::map<std::string, std::string> failing_;
};

} // namespace sandboxd
