// The sandbox and registry actors on CAF's deterministic test scheduler, in
// simulated time (tests/unit/test_scheduler_server.hpp), over a fake runtime:
// the TTL, E2B's auto-pause and auto-resume, the idle timeout, the metrics
// sampler, the reconcile after a restart and the transitions the state
// machine refuses. No sleeps: time moves only when a test advances it.
#include <gtest/gtest.h>

#include <chrono>
#include <algorithm>
#include <filesystem>

#include "actors/sandbox.hpp"
#include "core/ids.hpp"
#include "tests/unit/test_scheduler_server.hpp"

using namespace sandboxd;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// The simulated wall time each test starts at.
constexpr int64_t t0 = 1'800'000'000'000;

using calls = std::vector<std::string>;
using events = std::vector<event_type>;

struct SandboxTimers : ::testing::Test {
  std::string dir = (fs::temp_directory_path() / ("sandboxd-timers-" + random_hex(6))).string();
  std::shared_ptr<fake_runtime> rt = std::make_shared<fake_runtime>(dir);

  void SetUp() override { install_tiny_template(dir); }
  void TearDown() override { fs::remove_all(dir); }

  // Creates a sandbox from `spec` and returns its id.
  std::string create(test_scheduler_server& s, const create_spec& spec) {
    auto c = s.ask<sandbox_record>(s.registry, atom::create::value, spec);
    EXPECT_TRUE(c) << c.error().message;
    return c ? c->id : std::string{};
  }
};

// TTL `timeout_s`, paused instead of killed when it ends (E2B's autoPause).
create_spec auto_pausing(int64_t timeout_s) {
  auto spec = tiny_spec(timeout_s);
  spec.auto_pause = true;
  return spec;
}

// TTL 300 s, ended (kill_reason idle) after `idle_s` without use.
create_spec idling(int64_t idle_s) {
  auto spec = tiny_spec(300);
  spec.idle_timeout_s = idle_s;
  return spec;
}

// The reason of the sandbox's last event (its end), if it has one.
std::optional<kill_reason> end_reason(test_scheduler_server& s, const std::string& id) {
  auto all = s.logged(id);
  return all.empty() ? std::nullopt : all.back().reason;
}

} // namespace

// The TTL ends a sandbox when its timeout has passed, to the millisecond and
// not before: `killed` (timeout) logged, its processes and then its leftovers
// removed, and it is gone from the live set.
TEST_F(SandboxTimers, TheTtlKillsExactlyWhenTheTimeoutHasPassed) {
  test_scheduler_server s{dir, rt, t0};
  auto id = create(s, tiny_spec(60));
  EXPECT_EQ(s.record(id).end_at_ms, t0 + 60'000);
  s.advance(59'999ms);
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  EXPECT_EQ(s.events_of(id), events{event_type::created});
  s.advance(1ms);
  EXPECT_EQ(s.events_of(id), (events{event_type::created, event_type::killed}));
  EXPECT_EQ(end_reason(s, id), kill_reason::timeout);
  EXPECT_EQ(s.logged(id).back().timestamp_ms, t0 + 60'000);
  EXPECT_EQ(rt->calls(id), (calls{"create", "terminate", "reclaim"}));
  auto gone = s.ask<sandbox_actor>(s.registry, atom::lookup::value, std::string{"org"}, id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().status, 404);
  EXPECT_EQ(s.record(id).state, sandbox_state::stopped);
}

// setTimeout restarts the TTL from now; the timer of the old deadline still
// fires but is ignored (its generation is old).
TEST_F(SandboxTimers, SetTimeoutRestartsTheTtlAndTheOldTimerIsIgnored) {
  test_scheduler_server s{dir, rt, t0};
  auto id = create(s, tiny_spec(60));
  s.advance(30s);
  auto extended = s.ask<sandbox_record>(s.actor_of(id), atom::timeout::value, int64_t{60});
  ASSERT_TRUE(extended) << extended.error().message;
  EXPECT_EQ(extended->end_at_ms, t0 + 90'000);
  s.advance(30s); // the first deadline
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  s.advance(29'999ms);
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  s.advance(1ms);
  EXPECT_EQ(s.events_of(id),
            (events{event_type::created, event_type::updated, event_type::killed}));
  EXPECT_EQ(end_reason(s, id), kill_reason::timeout);
}

// A connect to a running sandbox extends its TTL (an `updated` event), never
// shortens it: a shorter timeout logs nothing and keeps the deadline.
TEST_F(SandboxTimers, ConnectExtendsTheTtlAndNeverShortensIt) {
  test_scheduler_server s{dir, rt, t0};
  auto id = create(s, tiny_spec(60));
  auto actor = s.actor_of(id);
  s.advance(50s);
  auto longer = s.ask<connect_result>(actor, atom::connect::value, int64_t{60});
  ASSERT_TRUE(longer) << longer.error().message;
  EXPECT_FALSE(longer->resumed);
  EXPECT_EQ(longer->sandbox.end_at_ms, t0 + 110'000);
  auto shorter = s.ask<connect_result>(actor, atom::connect::value, int64_t{5});
  ASSERT_TRUE(shorter) << shorter.error().message;
  EXPECT_EQ(shorter->sandbox.end_at_ms, t0 + 110'000);
  s.advance(59'999ms);
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  s.advance(1ms);
  EXPECT_EQ(s.events_of(id),
            (events{event_type::created, event_type::updated, event_type::killed}));
}

// A hard lifetime caps every later deadline: setTimeout past it ends the
// sandbox at the cap.
TEST_F(SandboxTimers, MaxLifetimeCapsSetTimeout) {
  test_scheduler_server s{dir, rt, t0};
  auto spec = tiny_spec(60);
  spec.max_lifetime_s = 100;
  auto id = create(s, spec);
  s.advance(50s);
  auto extended = s.ask<sandbox_record>(s.actor_of(id), atom::timeout::value, int64_t{300});
  ASSERT_TRUE(extended) << extended.error().message;
  EXPECT_EQ(extended->end_at_ms, t0 + 100'000);
  s.advance(49'999ms);
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  s.advance(1ms);
  EXPECT_EQ(end_reason(s, id), kill_reason::timeout);
}

// With auto-pause (E2B's lifecycle onTimeout: pause) the TTL freezes the
// sandbox instead of killing it; paused, no timer ends it. A connect resumes
// it and arms the TTL again, which pauses it again.
TEST_F(SandboxTimers, AutoPausePausesOnTimeoutAndConnectResumesAndRearms) {
  test_scheduler_server s{dir, rt, t0};
  auto id = create(s, auto_pausing(60));
  s.advance(60s);
  EXPECT_EQ(s.record(id).state, sandbox_state::paused);
  EXPECT_EQ(rt->calls(id), (calls{"create", "pause"}));
  s.advance(24h);
  EXPECT_EQ(s.record(id).state, sandbox_state::paused);
  EXPECT_EQ(s.events_of(id), (events{event_type::created, event_type::paused}));
  auto resumed = s.ask<connect_result>(s.actor_of(id), atom::connect::value, int64_t{30});
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_TRUE(resumed->resumed);
  EXPECT_EQ(resumed->sandbox.end_at_ms, t0 + 60'000 + 24 * 3'600'000LL + 30'000);
  s.advance(29'999ms);
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  s.advance(1ms);
  EXPECT_EQ(s.record(id).state, sandbox_state::paused);
  EXPECT_EQ(rt->calls(id), (calls{"create", "pause", "resume", "pause"}));
  EXPECT_EQ(s.events_of(id), (events{event_type::created, event_type::paused,
                                     event_type::resumed, event_type::paused}));
}

// Auto-resume: a data-plane request (here `endpoint`) to a sandbox the TTL
// paused resumes it first, with its own timeout, and its TTL runs again.
// Without auto-resume the same request is refused (409) and nothing moves.
TEST_F(SandboxTimers, AutoResumeWakesAPausedSandboxOnUse) {
  test_scheduler_server s{dir, rt, t0};
  auto spec = auto_pausing(60);
  spec.auto_resume = true;
  auto id = create(s, spec);
  auto plain = create(s, auto_pausing(60));
  s.advance(60s);
  ASSERT_EQ(s.record(id).state, sandbox_state::paused);
  ASSERT_EQ(s.record(plain).state, sandbox_state::paused);
  auto refused = s.ask<std::string>(s.actor_of(plain), atom::endpoint::value);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 409);
  EXPECT_EQ(rt->calls(plain), (calls{"create", "pause"}));
  auto socket = s.ask<std::string>(s.actor_of(id), atom::endpoint::value);
  ASSERT_TRUE(socket) << socket.error().message;
  EXPECT_EQ(*socket, rt->agent_socket(id));
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  EXPECT_EQ(s.record(id).end_at_ms, t0 + 120'000);
  s.advance(60s);
  EXPECT_EQ(s.record(id).state, sandbox_state::paused);
  EXPECT_EQ(rt->calls(id), (calls{"create", "pause", "resume", "pause"}));
}

// Auto-pause without memory stops the container (files kept); a connect
// boots it again on its files. Such a sandbox is not auto-resumed on use.
TEST_F(SandboxTimers, ColdAutoPauseStopsAndConnectBootsAgain) {
  test_scheduler_server s{dir, rt, t0};
  auto spec = auto_pausing(60);
  spec.auto_pause_memory = false;
  spec.auto_resume = true;
  auto id = create(s, spec);
  s.advance(60s);
  EXPECT_EQ(s.record(id).state, sandbox_state::paused);
  EXPECT_EQ(rt->calls(id), (calls{"create", "stop"}));
  auto used = s.ask<std::string>(s.actor_of(id), atom::endpoint::value);
  ASSERT_FALSE(used);
  EXPECT_EQ(used.error().status, 409);
  auto resumed = s.ask<connect_result>(s.actor_of(id), atom::connect::value, int64_t{60});
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_TRUE(resumed->resumed);
  EXPECT_EQ(rt->calls(id), (calls{"create", "stop", "create"}));
}

// An end the runtime refuses when its timer fires (the TTL's pause or kill,
// the idle timeout's kill) must not leave the sandbox running for good: it
// is tried again `end_retry` later, and succeeds once the runtime does.
TEST_F(SandboxTimers, AnEndTheRuntimeRefusesIsRetried) {
  struct end_case {
    create_spec spec;
    std::chrono::seconds due;
    std::string refused;  // the runtime call that fails at first
    sandbox_state ends_in;
    std::optional<kill_reason> reason;
  };
  std::vector<end_case> cases = {
    {auto_pausing(60), 60s, "pause", sandbox_state::paused, std::nullopt},
    {tiny_spec(60), 60s, "terminate", sandbox_state::stopped, kill_reason::timeout},
    {idling(30), 30s, "terminate", sandbox_state::stopped, kill_reason::idle},
  };
  test_scheduler_server s{dir, rt, t0};
  for (auto& c : cases) {
    SCOPED_TRACE(c.refused + " for " + std::to_string(c.due.count()) + " s");
    auto id = create(s, c.spec);
    rt->fail_on(c.refused, "the runtime is stuck");
    s.advance(c.due);
    EXPECT_EQ(s.record(id).state, sandbox_state::running);
    EXPECT_EQ(s.events_of(id), events{event_type::created});
    rt->heal(c.refused);
    s.advance(end_retry - 1ms);
    EXPECT_EQ(s.record(id).state, sandbox_state::running);
    s.advance(1ms);
    EXPECT_EQ(s.record(id).state, c.ends_in);
    EXPECT_EQ(s.logged(id).back().reason, c.reason);
    auto tried = rt->calls(id);
    EXPECT_EQ(std::count(tried.begin(), tried.end(), c.refused), 2);
  }
}

// A sandbox with an idle timeout that nothing uses ends when it has been
// idle that long (kill_reason idle), before its TTL.
TEST_F(SandboxTimers, AnUnusedSandboxEndsAfterItsIdleTimeout) {
  test_scheduler_server s{dir, rt, t0};
  auto id = create(s, idling(30));
  s.advance(29'999ms);
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  s.advance(1ms);
  EXPECT_EQ(s.events_of(id), (events{event_type::created, event_type::killed}));
  EXPECT_EQ(end_reason(s, id), kill_reason::idle);
  EXPECT_EQ(rt->calls(id), (calls{"create", "terminate", "reclaim"}));
}

// A use postpones the idle end: idleness counts from the last use.
TEST_F(SandboxTimers, AUseRestartsTheIdleTimeout) {
  test_scheduler_server s{dir, rt, t0};
  auto id = create(s, idling(30));
  s.advance(20s);
  ASSERT_TRUE(s.ask<sandbox_record>(s.actor_of(id), atom::get::value)); // a use
  s.advance(29'999ms);
  EXPECT_EQ(s.record(id).state, sandbox_state::running);
  s.advance(1ms);
  EXPECT_EQ(end_reason(s, id), kill_reason::idle);
  EXPECT_EQ(s.logged(id).back().timestamp_ms, t0 + 50'000);
}

// The metrics history: a first sample when the sandbox starts, then one per
// registry tick while it runs, none while it is paused.
TEST_F(SandboxTimers, MetricsAreSampledWhileRunningOnly) {
  test_scheduler_server s{dir, rt, t0, 5s};
  auto id = create(s, tiny_spec(300));
  auto samples = [&]() -> size_t {
    auto all = s.db->metrics(id, 0, INT64_MAX);
    EXPECT_TRUE(all) << all.error().message;
    return all ? all->size() : 0;
  };
  EXPECT_EQ(samples(), 1u);
  s.advance(5s);
  EXPECT_EQ(samples(), 2u);
  s.advance(5s);
  EXPECT_EQ(samples(), 3u);
  ASSERT_TRUE(s.ask<sandbox_record>(s.actor_of(id), atom::pause::value, true));
  s.advance(20s);
  EXPECT_EQ(samples(), 3u);
  ASSERT_TRUE(s.ask<connect_result>(s.actor_of(id), atom::connect::value, int64_t{300}));
  EXPECT_EQ(samples(), 4u); // the resumed sandbox's first sample
}

// What the state machine refuses, and that a refused request changes
// nothing: pause twice (409), setTimeout while paused (409); a sandbox gone
// is 404 however it is reached, and a second kill that met the first in the
// mailbox is 404 too, not a server error.
TEST_F(SandboxTimers, TheStateMachineRefusesBadTransitions) {
  test_scheduler_server s{dir, rt, t0};
  auto id = create(s, tiny_spec(60));
  auto actor = s.actor_of(id);
  ASSERT_TRUE(s.ask<sandbox_record>(actor, atom::pause::value, true));
  auto twice = s.ask<sandbox_record>(actor, atom::pause::value, true);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().status, 409);
  auto timeout = s.ask<sandbox_record>(actor, atom::timeout::value, int64_t{60});
  ASSERT_FALSE(timeout);
  EXPECT_EQ(timeout.error().status, 409);
  EXPECT_EQ(rt->calls(id), (calls{"create", "pause"}));
  EXPECT_EQ(s.events_of(id), (events{event_type::created, event_type::paused}));
  auto first = s.send<sandbox_record>(actor, atom::kill::value, kill_reason::request);
  auto second = s.send<sandbox_record>(actor, atom::kill::value, kill_reason::request);
  auto killed = s.reply(first);
  ASSERT_TRUE(killed) << killed.error().message;
  EXPECT_EQ(killed->state, sandbox_state::stopped);
  auto again = s.reply(second);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().status, 404);
  auto late = s.ask<connect_result>(actor, atom::connect::value, int64_t{60});
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().status, 404);
  EXPECT_EQ(s.events_of(id), (events{event_type::created, event_type::paused, event_type::killed}));
}

// A restart replays the log and reconciles each sandbox with the runtime:
// a vanished container ends its sandbox as orphaned, a paused one stays
// paused (no timer ends it), a running one keeps the deadline the log holds,
// one whose deadline passed while the server was down ends at once, and a
// container no sandbox owns is removed.
TEST_F(SandboxTimers, AfterARestartTimersFollowTheLog) {
  std::string kept, lost, paused, overdue;
  {
    test_scheduler_server s{dir, rt, t0};
    kept = create(s, tiny_spec(300));
    lost = create(s, tiny_spec(300));
    paused = create(s, tiny_spec(300));
    overdue = create(s, tiny_spec(15));
    ASSERT_TRUE(s.ask<sandbox_record>(s.actor_of(paused), atom::pause::value, true));
    s.advance(10s);
  }
  // Down from t0 + 10 s to t0 + 20 s; one container vanished meanwhile.
  auto after = std::make_shared<fake_runtime>(dir);
  after->set_state(kept, "running");
  after->set_state(paused, "paused");
  after->set_state(overdue, "running");
  after->set_state("strayxxxxxxxxxxxxxxx", "running");
  test_scheduler_server s{dir, after, t0 + 20'000};
  EXPECT_EQ(s.events_of(lost), (events{event_type::created, event_type::killed}));
  EXPECT_EQ(end_reason(s, lost), kill_reason::orphaned);
  EXPECT_EQ(after->calls(lost), calls{"destroy"});
  EXPECT_EQ(after->calls("strayxxxxxxxxxxxxxxx"), calls{"destroy"});
  EXPECT_EQ(after->calls(paused), calls{"update_network"});
  EXPECT_EQ(s.record(kept).state, sandbox_state::running);
  s.advance(0ms); // the overdue TTL fires now
  EXPECT_EQ(end_reason(s, overdue), kill_reason::timeout);
  s.advance(279'999ms);
  EXPECT_EQ(s.record(kept).state, sandbox_state::running);
  s.advance(1ms);
  EXPECT_EQ(end_reason(s, kept), kill_reason::timeout);
  EXPECT_EQ(s.logged(kept).back().timestamp_ms, t0 + 300'000);
  s.advance(24h);
  EXPECT_EQ(s.record(paused).state, sandbox_state::paused);
  EXPECT_EQ(after->calls(paused), calls{"update_network"});
}
