// One server lifetime (store, event log, registry, sandbox actors over a fake
// runtime) on CAF's deterministic test scheduler, in simulated time: no
// message is handled and no timer fires but when the test says so.
//
// On that scheduler the executor runs blocking jobs inline and the event log
// is not detached (actors/executor.hpp: on_test_scheduler), and now_ms()
// reads the scheduler's clock, so every timestamp, TTL and idle deadline is
// simulated time too.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/event_log.hpp"
#include "actors/executor.hpp"
#include "core/clock.hpp"
#include "tests/unit/actor_test_setup.hpp"

namespace sandboxd {

class test_scheduler_server {
public:
  // Starts at wall time `start_ms` (simulated) and recovers from the log in
  // `dir`, as sandboxd serve does before serving.
  test_scheduler_server(const std::string& dir, std::shared_ptr<fake_runtime> rt,
                        int64_t start_ms,
                        std::chrono::milliseconds metrics_interval = std::chrono::hours{1}) {
    auto opened = store::open(dir + "/db");
    EXPECT_TRUE(opened) << opened.error().message;
    db = std::move(*opened);
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    EXPECT_TRUE(on_test_scheduler(*sys));
    clock_of_now = sched;
    epoch_ms = start_ms - since_clock_start(*sched);
    set_now_source(simulated_now);
    executors = std::make_unique<blocking_executors>(*sys);
    log = spawn_event_log(*sys, db, webhook_dispatcher_actor{}, {std::chrono::milliseconds{0}, {}});
    registry = spawn_registry(*sys, test_registry_config(dir, db, std::move(rt), log,
                                                         metrics_interval));
    auto live = ask<uint64_t>(registry, atom::recover::value);
    EXPECT_TRUE(live) << live.error().message;
  }

  // Stops every actor (sandboxes outlive the registry, as in a stopping
  // server) and drains their mailboxes: nothing fires after the test.
  ~test_scheduler_server() {
    auto ids = ask<std::vector<std::string>>(registry, atom::list::value);
    EXPECT_TRUE(ids) << ids.error().message;
    for (auto& id : ids ? *ids : std::vector<std::string>{})
      if (auto a = ask<sandbox_actor>(registry, atom::lookup::value, id))
        caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(log, caf::exit_reason::user_shutdown);
    registry = registry_actor{};
    log = event_log_actor{};
    executors.reset();
    sched->run();
    // A test that failed may leave a request unanswered: never wait for it.
    sys->await_actors_before_shutdown(false);
    sys.reset();
    set_now_source(nullptr);
    clock_of_now = nullptr;
  }

  test_scheduler_server(const test_scheduler_server&) = delete;
  test_scheduler_server& operator=(const test_scheduler_server&) = delete;

  // A reply not come yet, or the reply (or the failure).
  template <class T>
  using slot = std::shared_ptr<std::optional<result<T>>>;

  // Sends `xs` to `to` from a one-shot actor, without running anything yet:
  // requests sent together meet in the receiver's mailbox.
  template <class T, class Handle, class... Ts>
  slot<T> send(const Handle& to, Ts... xs) {
    auto out = std::make_shared<std::optional<result<T>>>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(to, caf::infinite, xs...)
        .then([out](T& v) { out->emplace(std::move(v)); },
              [out](caf::error& e) { out->emplace(from_error(e)); });
    });
    return out;
  }

  // The reply in `s`, once every message due now was handled.
  template <class T>
  result<T> reply(const slot<T>& s) {
    sched->run();
    if (!*s)
      return failure{0, "no reply (the request is still pending)"};
    return std::move(**s);
  }

  // Sends `xs` to `to` and returns the reply, handling whatever is due now.
  template <class T, class Handle, class... Ts>
  result<T> ask(const Handle& to, Ts... xs) {
    return reply(send<T>(to, xs...));
  }

  // Lets `d` of simulated time pass: fires each timer due by then and
  // handles every message that follows.
  void advance(std::chrono::milliseconds d) {
    sched->advance_time(d);
    sched->run();
  }

  sandbox_actor actor_of(const std::string& id) {
    auto a = ask<sandbox_actor>(registry, atom::lookup::value, std::string{"org"}, id);
    EXPECT_TRUE(a) << a.error().message;
    return a ? *a : sandbox_actor{};
  }

  // The registry's record of `id` (no message reaches the sandbox: nothing
  // counts as a use of it).
  sandbox_record record(const std::string& id) {
    auto r = ask<sandbox_record>(registry, atom::get::value, std::string{"org"}, id);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : sandbox_record{};
  }

  // The sandbox's logged events (a failed read fails the test).
  std::vector<event> logged(const std::string& id) {
    auto all = db->events_of_sandbox(id);
    if (!all) {
      ADD_FAILURE() << all.error().message;
      return {};
    }
    return std::move(*all);
  }

  std::vector<event_type> events_of(const std::string& id) {
    std::vector<event_type> out;
    for (auto& e : logged(id))
      out.push_back(e.type);
    return out;
  }

  std::shared_ptr<store> db;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::unique_ptr<blocking_executors> executors;
  registry_actor registry;
  event_log_actor log;

private:
  static int64_t since_clock_start(caf::scheduler::test_coordinator& s) {
    using namespace std::chrono;
    return duration_cast<milliseconds>(s.clock().current_time.time_since_epoch()).count();
  }
  // now_ms() while a server runs: its scheduler's clock past `epoch_ms`.
  static int64_t simulated_now() { return epoch_ms + since_clock_start(*clock_of_now); }

  static inline caf::scheduler::test_coordinator* clock_of_now = nullptr;
  static inline int64_t epoch_ms = 0;
};

} // namespace sandboxd
