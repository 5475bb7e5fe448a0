#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/event.hpp"

using namespace sandboxd;

TEST(event, encode_decode_round_trip) {
  event e;
  e.seq = 42;
  e.id = "11111111-2222-4333-8444-555555555555";
  e.type = event_type::killed;
  e.timestamp_ms = 1700000000123;
  e.sandbox_id = "abc";
  e.template_id = "base";
  e.team_id = "org";
  e.execution_id = "x1";
  e.metadata = {{"k", "v"}};
  e.env_vars = {{"A", "B"}};
  e.execution = execution_info{1, 2, 512, 99};
  e.reason = kill_reason::orphaned;
  auto back = decode_event(encode(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->seq, 42u);
  EXPECT_EQ(back->type, event_type::killed);
  EXPECT_EQ(back->metadata, e.metadata);
  EXPECT_EQ(back->env_vars, e.env_vars);
  ASSERT_TRUE(back->execution);
  EXPECT_EQ(back->execution->execution_time_ms, 99);
  EXPECT_EQ(back->reason, kill_reason::orphaned);
}

TEST(event, corrupt_bytes_do_not_decode) {
  EXPECT_FALSE(decode_event(""));
  EXPECT_FALSE(decode_event("\x07garbage"));
  event e;
  auto bytes = encode(e);
  EXPECT_FALSE(decode_event(bytes.substr(0, bytes.size() / 2)));
}

TEST(event, json_has_e2b_shape) {
  event e;
  e.id = "id1";
  e.type = event_type::updated;
  e.timestamp_ms = 0;
  e.sandbox_id = "sbx";
  e.end_at_ms = 1000;
  e.metadata = {{"user", "alice"}};
  e.env_vars = {{"SECRET", "x"}};
  auto j = to_json(e);
  EXPECT_EQ(j["version"], "v1");
  EXPECT_EQ(j["type"], "sandbox.lifecycle.updated");
  EXPECT_EQ(j["timestamp"], "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(j["sandboxId"], "sbx");
  EXPECT_EQ(j["eventData"]["sandbox_metadata"]["user"], "alice");
  EXPECT_EQ(j["eventData"]["set_timeout"], "1970-01-01T00:00:01.000Z");
  EXPECT_FALSE(j["eventData"].contains("execution"));
  // Internal fields never leak into the public shape.
  EXPECT_EQ(j.dump().find("SECRET"), std::string::npos);
  for (auto k : {"id", "sandboxExecutionId", "sandboxTemplateId", "sandboxBuildId",
                 "sandboxTeamId"})
    EXPECT_TRUE(j.contains(k)) << k;
}

TEST(event, killed_json_carries_reason_and_execution) {
  event e;
  e.type = event_type::killed;
  e.execution = execution_info{0, 2, 512, 1500};
  e.reason = kill_reason::timeout;
  auto j = to_json(e);
  EXPECT_EQ(j["eventData"]["kill_reason"], "timeout");
  EXPECT_EQ(j["eventData"]["execution"]["execution_time_ms"], 1500);
  EXPECT_EQ(j["eventData"]["execution"]["vcpu_count"], 2);
}

TEST(event, extensions_round_trip_and_render_as_agent_data) {
  event e;
  e.type = event_type::updated;
  e.ext = {{event_ext::agent_status, "failed"}, {event_ext::agent_exit_code, "143"},
           {event_ext::agent_cancel, "user_request"}};
  auto back = decode_event(encode(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->ext, e.ext);
  EXPECT_EQ(back->format, 4);
  auto agent = to_json(*back)["eventData"]["agent"];
  EXPECT_EQ(agent, nlohmann::json({{"status", "failed"}, {"exit_code", 143},
                                   {"cancel", "user_request"}}));
  // Without extensions there is no agent object.
  EXPECT_FALSE(to_json(event{})["eventData"].contains("agent"));
}

TEST(event, older_formats_keep_their_bytes_and_hash) {
  // An event written before extensions existed decodes, re-encodes to the
  // same bytes, and so keeps its place in the hash chain.
  event e;
  e.format = 3;
  e.id = "old";
  e.idle_timeout_s = 60;
  e.prev_hash = std::string(64, '0');
  e.hash = chain_hash(e);
  auto bytes = encode(e);
  auto back = decode_event(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->format, 3);
  EXPECT_TRUE(back->ext.empty());
  EXPECT_EQ(encode(*back), bytes);
  EXPECT_EQ(chain_hash(*back), e.hash);
}

TEST(clock, rfc3339_round_trip) {
  EXPECT_EQ(to_rfc3339(1700000000123), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20.123Z"), 1700000000123);
  EXPECT_EQ(parse_rfc3339("2023-11-14T23:13:20.123+01:00"), 1700000000123);
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20Z"), 1700000000000);
  EXPECT_FALSE(parse_rfc3339("yesterday"));
  EXPECT_FALSE(parse_rfc3339("2023-11-14T22:13:20"));
}
