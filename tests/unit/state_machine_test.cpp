#include <gtest/gtest.h>

#include "core/sandbox.hpp"
#include "tests/unit/stored_copy.hpp"

using namespace sandboxd;

namespace {

event ev(event_type t, uint64_t seq, const std::string& id = "sbx") {
  event e;
  e.type = t;
  e.seq = seq;
  e.id = "e" + std::to_string(seq);
  e.sandbox_id = id;
  e.team_id = "org";
  e.template_id = "base";
  e.timestamp_ms = 1000 * static_cast<int64_t>(seq);
  e.end_at_ms = 5000 + 1000 * static_cast<int64_t>(seq);
  e.cpu_count = 2;
  e.memory_mb = 512;
  return e;
}

} // namespace

TEST(state_machine, created_makes_a_running_sandbox) {
  sandbox_record rec;
  ASSERT_TRUE(apply(rec, ev(event_type::created, 1)).ok());
  EXPECT_EQ(rec.state, sandbox_state::running);
  EXPECT_EQ(rec.org_id, "org");
  EXPECT_EQ(rec.end_at_ms, 6000);
  EXPECT_EQ(rec.last_seq, 1u);
}

TEST(state_machine, pause_resume_kill) {
  sandbox_record rec;
  ASSERT_TRUE(apply(rec, ev(event_type::created, 1)).ok());
  ASSERT_TRUE(apply(rec, ev(event_type::paused, 2)).ok());
  EXPECT_EQ(rec.state, sandbox_state::paused);
  ASSERT_TRUE(apply(rec, ev(event_type::resumed, 3)).ok());
  EXPECT_EQ(rec.state, sandbox_state::running);
  EXPECT_EQ(rec.end_at_ms, 8000);
  auto k = ev(event_type::killed, 4);
  k.reason = kill_reason::timeout;
  ASSERT_TRUE(apply(rec, k).ok());
  EXPECT_EQ(rec.state, sandbox_state::stopped);
  EXPECT_EQ(rec.end_reason, kill_reason::timeout);
}

TEST(state_machine, rejects_impossible_sequences) {
  sandbox_record rec;
  ASSERT_TRUE(apply(rec, ev(event_type::created, 1)).ok());
  EXPECT_FALSE(apply(rec, ev(event_type::resumed, 2)).ok()); // not paused
  EXPECT_FALSE(apply(rec, ev(event_type::created, 3)).ok()); // twice
  EXPECT_FALSE(apply(rec, ev(event_type::paused, 4, "other")).ok());
  ASSERT_TRUE(apply(rec, ev(event_type::paused, 5)).ok());
  EXPECT_FALSE(apply(rec, ev(event_type::paused, 6)).ok());
  EXPECT_FALSE(apply(rec, ev(event_type::killed, 5)).ok()); // out of order
  ASSERT_TRUE(apply(rec, ev(event_type::killed, 7)).ok());
  EXPECT_FALSE(apply(rec, ev(event_type::killed, 8)).ok());
}

TEST(state_machine, transition_checks_name_the_conflict) {
  EXPECT_TRUE(check_transition(sandbox_state::running, sandbox_op::pause).ok());
  auto again = check_transition(sandbox_state::paused, sandbox_op::pause);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().status, 409);
  auto gone = check_transition(sandbox_state::stopped, sandbox_op::kill);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().status, 404);
  EXPECT_EQ(gone.error().message, "sandbox not found");
  EXPECT_EQ(check_transition(sandbox_state::paused, sandbox_op::use).error().status, 409);
  EXPECT_TRUE(check_transition(sandbox_state::paused, sandbox_op::resume).ok());
  EXPECT_TRUE(check_transition(sandbox_state::paused, sandbox_op::kill).ok());
}

TEST(state_machine, execution_time_counts_running_time) {
  sandbox_record rec;
  ASSERT_TRUE(apply(rec, ev(event_type::created, 1)).ok());
  auto x = current_execution(rec, 4500);
  EXPECT_EQ(x.execution_time_ms, 3500);
  EXPECT_EQ(x.vcpu_count, 2);
  EXPECT_EQ(x.memory_mb, 512);
}

TEST(state_machine, agent_facts_fold_in_and_survive_the_checkpoint) {
  sandbox_record rec;
  auto created = ev(event_type::created, 1);
  created.ext = {{event_ext::agent, "claude-code"}, {event_ext::agent_model, "claude-x"},
                 {event_ext::agent_grace, "2"}};
  ASSERT_TRUE(apply(rec, created).ok());
  auto a = agent_of(rec);
  EXPECT_EQ(a.name, "claude-code");
  EXPECT_EQ(a.status, "");
  EXPECT_EQ(a.cancel_grace_s, 2);
  auto up = ev(event_type::updated, 2);
  up.end_at_ms = rec.end_at_ms;
  up.ext = {{event_ext::agent_status, "running"}, {event_ext::agent_pid, "42"}};
  ASSERT_TRUE(apply(rec, up).ok());
  auto end = ev(event_type::updated, 3);
  end.end_at_ms = rec.end_at_ms;
  end.ext = {{event_ext::agent_status, "failed"}, {event_ext::agent_exit_code, "3"}};
  ASSERT_TRUE(apply(rec, end).ok());
  a = agent_of(rec);
  EXPECT_EQ(a.status, "failed");
  EXPECT_EQ(a.pid, 42);
  EXPECT_EQ(a.exit_code, 3);
  EXPECT_EQ(rec.end_at_ms, 6000) << "agent facts leave the TTL alone";
  auto back = stored_copy(rec);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->ext, rec.ext);
}
