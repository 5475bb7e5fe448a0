// The agent stream actor over a fake agent, through its typed interfaces:
// frames reach the sink (agent_sink_actor) as agent_frames in order, within
// the credit the sink returns (agent_stream_actor's ack); an agent's error
// ends the stream as an agent_stream_error whose status is ours to derive;
// an agent gone between two frames is `lost`.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/agent_frame_json.hpp"
#include "actors/agent_stream.hpp"
#include "tests/unit/fake_agent.hpp"

using namespace sandboxd;
using namespace sandboxd::fakes;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

const json started = {{"type", "start"}, {"pid", 7}};
const json printed = {{"type", "stdout"}, {"data", "aGkK"}};
const json ended = {{"type", "end"}, {"exit_code", 0}, {"exited", true}, {"signal", 0},
                    {"status", "exit status 0"}, {"timed_out", false}};

class AgentStream : public ::testing::Test {
protected:
  // Opens a stream on the fake agent answering `answer`, the scoped actor
  // its sink.
  agent_stream_actor open(const std::string& answer, uint32_t window = 64) {
    fake.answer(answer);
    auto stream = spawn_agent_stream(sys, fake.socket(), to_frame({{"op", "exec"}, {"cmd", "x"}}),
                                     caf::actor_cast<agent_sink_actor>(self), std::nullopt,
                                     window);
    self->monitor(stream);
    return stream;
  }

  // What the sink gets until the stream actor ends, acknowledging each frame.
  void drain(const agent_stream_actor& stream) {
    bool down = false;
    while (!down)
      self->receive(
        [&](atom::frame, agent_frame& f) {
          auto j = parse_frame(f);
          ASSERT_TRUE(j) << f.text;
          types.push_back(j->value("type", ""));
          self->send(stream, atom::ack::value, uint32_t{1});
        },
        [&](atom::broken, agent_stream_error& e) { end = e; },
        [&](caf::down_msg&) { down = true; },
        caf::after(10s) >> [&] {
          ADD_FAILURE() << "the stream did not end";
          down = true;
        });
  }

  fake_agent fake; // outlives the system, which waits for the stream actor
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::vector<std::string> types;
  std::optional<agent_stream_error> end;
};

TEST_F(AgentStream, frames_reach_the_sink_in_order) {
  drain(open(frame(started) + frame(printed) + frame(ended)));
  EXPECT_EQ(types, (std::vector<std::string>{"start", "stdout", "end"}));
  EXPECT_FALSE(end);
}

TEST_F(AgentStream, an_agent_error_ends_the_stream_with_its_status) {
  drain(open(frame(started) + frame({{"type", "error"}, {"code", "not_found"},
                                     {"message", "no such process"}})));
  EXPECT_EQ(types, (std::vector<std::string>{"start"}));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->why.status, 404);
  EXPECT_EQ(end->why.message, "no such process");
  EXPECT_FALSE(end->lost);
}

TEST_F(AgentStream, an_agent_gone_between_frames_is_lost) {
  drain(open(frame(started)));
  EXPECT_EQ(types, (std::vector<std::string>{"start"}));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->why.status, 502);
  EXPECT_TRUE(end->lost) << end->why.message;
}

TEST_F(AgentStream, frames_wait_for_credit) {
  auto stream = open(frame(started) + frame(printed) + frame(ended), 1);
  std::vector<std::string> first;
  self->receive([&](atom::frame, agent_frame& f) { first.push_back(f.text); },
                caf::after(10s) >> [] { ADD_FAILURE() << "no first frame"; });
  ASSERT_EQ(first.size(), 1u);
  // The window is full: nothing more comes until the sink acknowledges.
  bool more = false;
  self->receive([&](atom::frame, agent_frame&) { more = true; },
                caf::after(500ms) >> [] {});
  EXPECT_FALSE(more);
  self->send(stream, atom::ack::value, uint32_t{1});
  drain(stream);
  EXPECT_EQ(types, (std::vector<std::string>{"stdout", "end"}));
}

} // namespace
