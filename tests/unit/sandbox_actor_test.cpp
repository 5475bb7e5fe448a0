// The sandbox and registry actors on a real actor system, a real store and
// event log, and a fake container runtime (runtime/sandbox_runtime.hpp):
// the lifecycle state machine, a runtime failure, and the reconcile after a
// restart, without containers.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include <caf/all.hpp>

#include "actors/event_log.hpp"
#include "actors/executor.hpp"
#include "core/ids.hpp"
#include "tests/unit/actor_test_setup.hpp"

using namespace sandboxd;
namespace fs = std::filesystem;

namespace {

// One server lifetime: the store, the event log and the registry over a
// fake runtime; `recover` ran (as sandboxd serve does before serving).
struct server {
  std::shared_ptr<store> db;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<blocking_executors> executors;
  registry_actor registry;
  event_log_actor log;

  server(const std::string& dir, std::shared_ptr<fake_runtime> rt) {
    auto opened = store::open(dir + "/db");
    EXPECT_TRUE(opened) << opened.error().message;
    db = std::move(*opened);
    sys = std::make_unique<caf::actor_system>(cfg);
    executors = std::make_unique<blocking_executors>(*sys);
    log = spawn_event_log(*sys, db, webhook_dispatcher_actor{}, {std::chrono::milliseconds{0}, {}});
    registry = spawn_registry(*sys, test_registry_config(dir, db, std::move(rt), log,
                                                         std::chrono::hours{1}));
    caf::scoped_actor self{*sys};
    self->request(registry, caf::infinite, atom::recover::value)
      .receive([](uint64_t) {},
               [](caf::error& e) { ADD_FAILURE() << from_error(e).message; });
  }

  ~server() {
    // Sandbox actors outlive the registry (a stopping server leaves its
    // sandboxes running): stopped one by one, as a process exit would.
    {
      caf::scoped_actor self{*sys};
      std::vector<std::string> ids;
      self->request(registry, std::chrono::seconds{10}, atom::list::value)
        .receive([&](std::vector<std::string>& v) { ids = std::move(v); },
                 [](caf::error& e) { ADD_FAILURE() << from_error(e).message; });
      for (auto& id : ids)
        self->request(registry, std::chrono::seconds{10}, atom::lookup::value, id)
          .receive([](sandbox_actor& a) { caf::anon_send_exit(a, caf::exit_reason::user_shutdown); },
                   [](caf::error&) {});
    }
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(log, caf::exit_reason::user_shutdown);
    // A detached actor's thread ends once no handle is left to it.
    registry = registry_actor{};
    log = event_log_actor{};
    executors.reset();
    sys.reset();
  }

  // Sends `xs` to `to` and returns the reply, or the failure.
  template <class T, class Handle, class... Ts>
  result<T> ask(const Handle& to, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    std::optional<result<T>> out;
    self->request(to, std::chrono::seconds{30}, std::forward<Ts>(xs)...)
      .receive([&](T& v) { out.emplace(std::move(v)); },
               [&](caf::error& e) { out.emplace(from_error(e)); });
    return std::move(*out);
  }

  std::vector<event_type> events_of(const std::string& id) {
    std::vector<event_type> out;
    auto events = db->events_of_sandbox(id);
    EXPECT_TRUE(events) << events.error().message;
    for (auto& e : events ? *events : std::vector<event>{})
      out.push_back(e.type);
    return out;
  }
};

struct SandboxActor : ::testing::Test {
  std::string dir = (fs::temp_directory_path() / ("sandboxd-actor-" + random_hex(6))).string();

  void SetUp() override { install_tiny_template(dir); }
  void TearDown() override { fs::remove_all(dir); }

  create_spec tiny() { return tiny_spec(); }
};

// Polls `f` (a state reached by asynchronous work) for up to 10 s.
template <class F>
bool eventually(F f) {
  for (int i = 0; i < 200; ++i) {
    if (f())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  return f();
}

} // namespace

TEST_F(SandboxActor, LifecycleReachesTheRuntimeAndTheLogInOrder) {
  auto rt = std::make_shared<fake_runtime>(dir);
  server s{dir, rt};
  auto created = s.ask<sandbox_record>(s.registry, atom::create::value, tiny());
  ASSERT_TRUE(created) << created.error().message;
  auto id = created->id;
  EXPECT_EQ(created->state, sandbox_state::running);
  auto actor = s.ask<sandbox_actor>(s.registry, atom::lookup::value, std::string{"org"}, id);
  ASSERT_TRUE(actor);
  auto paused = s.ask<sandbox_record>(*actor, atom::pause::value, true);
  ASSERT_TRUE(paused) << paused.error().message;
  EXPECT_EQ(paused->state, sandbox_state::paused);
  // Paused twice: a conflict, and nothing reaches the runtime.
  auto again = s.ask<sandbox_record>(*actor, atom::pause::value, true);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().status, 409);
  auto resumed = s.ask<connect_result>(*actor, atom::connect::value, int64_t{300});
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_TRUE(resumed->resumed);
  auto killed = s.ask<sandbox_record>(*actor, atom::kill::value, kill_reason::request);
  ASSERT_TRUE(killed) << killed.error().message;
  EXPECT_EQ(killed->state, sandbox_state::stopped);
  EXPECT_EQ(s.events_of(id), (std::vector<event_type>{event_type::created, event_type::paused,
                                                       event_type::resumed, event_type::killed}));
  EXPECT_TRUE(eventually([&] {
    return rt->calls(id)
           == std::vector<std::string>{"create", "pause", "resume", "terminate", "reclaim"};
  })) << ::testing::PrintToString(rt->calls(id));
  // Gone from the live set: a lookup fails, the record stays readable.
  EXPECT_FALSE(s.ask<sandbox_actor>(s.registry, atom::lookup::value, std::string{"org"}, id));
  auto got = s.ask<sandbox_record>(s.registry, atom::get::value, std::string{"org"}, id);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->state, sandbox_state::stopped);
}

TEST_F(SandboxActor, ARuntimeFailureLeavesTheSandboxAsItWas) {
  auto rt = std::make_shared<fake_runtime>(dir);
  server s{dir, rt};
  auto created = s.ask<sandbox_record>(s.registry, atom::create::value, tiny());
  ASSERT_TRUE(created) << created.error().message;
  auto actor = s.ask<sandbox_actor>(s.registry, atom::lookup::value,
                                    std::string{"org"}, created->id);
  ASSERT_TRUE(actor);
  rt->fail_on("pause", "the freezer is stuck");
  auto paused = s.ask<sandbox_record>(*actor, atom::pause::value, true);
  ASSERT_FALSE(paused);
  EXPECT_GE(paused.error().status, 500);
  EXPECT_NE(paused.error().message.find("the freezer is stuck"), std::string::npos)
    << paused.error().message;
  // Nothing logged; still running, and usable: the next pause works.
  EXPECT_EQ(s.events_of(created->id), std::vector<event_type>{event_type::created});
  rt->heal("pause");
  auto retried = s.ask<sandbox_record>(*actor, atom::pause::value, true);
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_EQ(retried->state, sandbox_state::paused);
}

TEST_F(SandboxActor, AfterARestartTheLogWinsAndAVanishedContainerEndsOrphaned) {
  std::string kept, lost, was_paused;
  auto rt = std::make_shared<fake_runtime>(dir);
  {
    server s{dir, rt};
    for (auto* id : {&kept, &lost, &was_paused}) {
      auto c = s.ask<sandbox_record>(s.registry, atom::create::value, tiny());
      ASSERT_TRUE(c) << c.error().message;
      *id = c->id;
    }
    auto actor = s.ask<sandbox_actor>(s.registry, atom::lookup::value,
                                      std::string{"org"}, was_paused);
    ASSERT_TRUE(actor);
    ASSERT_TRUE(s.ask<sandbox_record>(*actor, atom::pause::value, true));
  }
  // While the server was down: one container vanished, and the paused one
  // was thawed behind the server's back.
  auto after = std::make_shared<fake_runtime>(dir);
  after->set_state(kept, "running");
  after->set_state(was_paused, "running");
  after->set_state("strayxxxxxxxxxxxxxxx", "running"); // no sandbox owns it
  server s{dir, after};
  EXPECT_TRUE(eventually([&] { return s.events_of(lost).size() == 2; }));
  auto ended = *s.db->events_of_sandbox(lost);
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended.back().type, event_type::killed);
  EXPECT_EQ(ended.back().reason, kill_reason::orphaned);
  // Frozen again, its rules applied again (a flushed ruleset).
  EXPECT_TRUE(eventually([&] {
    return after->calls(was_paused) == std::vector<std::string>{"pause", "update_network"};
  })) << ::testing::PrintToString(after->calls(was_paused));
  EXPECT_EQ(after->calls(lost), std::vector<std::string>{"destroy"});
  EXPECT_TRUE(eventually([&] {
    auto c = after->calls("strayxxxxxxxxxxxxxxx");
    return c == std::vector<std::string>{"destroy"};
  }));
  auto k = s.ask<sandbox_record>(s.registry, atom::get::value, std::string{"org"}, kept);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->state, sandbox_state::running);
  EXPECT_EQ(s.events_of(kept), std::vector<event_type>{event_type::created});
}
