// A hostile agent: a fake on a unix socket in a temp dir answers every
// request with garbage (not JSON, too deep, too big, wrong shapes, cut
// short). The host-side client must turn each into a 502 with a reason,
// never an exception, a default value or a 500.
#include <gtest/gtest.h>

#include <string>

#include "actors/output_lines.hpp"
#include "core/utf8_lossy.hpp"
#include "runtime/agent_client.hpp"
#include "runtime/agent_protocol.hpp"
#include "runtime/base64.hpp"
#include "tests/unit/fake_agent.hpp"

using namespace sandboxd;
using namespace sandboxd::fakes;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

class AgentAnswers : public ::testing::Test {
protected:
  // The failure of `op` when the agent answers `bytes`.
  failure call_fails(const std::string& op, const std::string& bytes) {
    fake.answer(bytes);
    auto r = agent::call(fake.socket(), {{"op", op}}, 5s);
    EXPECT_FALSE(r.ok()) << op << " accepted " << (r ? r->dump() : "");
    return r ? failure{200, ""} : r.error();
  }
  failure run_fails(const std::string& bytes) {
    fake.answer(bytes);
    auto r = agent::run(fake.socket(), {{"cmd", "x"}}, 5s);
    EXPECT_FALSE(r.ok()) << "exec accepted, exit code " << (r ? r->exit_code : 0);
    return r ? failure{200, ""} : r.error();
  }
  void expect_502(const failure& f, const std::string& reason) {
    EXPECT_EQ(f.status, 502) << f.message;
    EXPECT_NE(f.message.find(reason), std::string::npos) << f.message;
  }

  fake_agent fake;
};

const json exec_start = {{"type", "start"}, {"pid", 7}};
const json exec_end = {{"type", "end"}, {"exit_code", 3}, {"exited", true}, {"signal", 0},
                       {"status", "exit status 3"}, {"timed_out", false}};

} // namespace

TEST_F(AgentAnswers, garbage_frames_are_502_with_a_reason) {
  expect_502(call_fails("env", frame_bytes("{{{{")), "frame payload is not valid JSON");
  expect_502(call_fails("env", frame_bytes("[1,2]")), "not a JSON object");
  expect_502(call_fails("env", frame_bytes("\"text\"")), "not a JSON object");
  // Bytes that are not UTF-8 inside a JSON string: not JSON.
  expect_502(call_fails("env", frame_bytes("{\"type\":\"result\",\"env\":{\"A\":\"\xff\xfe\"}}")),
             "frame payload is not valid JSON");
  // A frame cut short, and silence after the request.
  expect_502(call_fails("env", frame_bytes("{\"type\":\"result\"}").substr(0, 9)), "sandbox agent");
  expect_502(call_fails("env", ""), "connection closed");
}

TEST_F(AgentAnswers, too_deep_and_too_large_frames_are_refused_before_parsing) {
  std::string deep = "{\"type\":\"result\",\"env\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
  expect_502(call_fails("env", frame_bytes(deep)), "nested deeper than");
  std::string header{char(0x01), char(0x00), char(0x00), char(0x01)}; // 16 MiB + 1
  expect_502(call_fails("env", header + std::string(1024, ' ')), "exceeds the limit");
}

TEST_F(AgentAnswers, wrong_shapes_are_502) {
  expect_502(call_fails("env", frame({{"type", 42}})), "frame has no type");
  expect_502(call_fails("env", frame({{"kind", "result"}})), "frame has no type");
  expect_502(call_fails("env", frame({{"type", "result"}})), "result has no env");
  expect_502(call_fails("env", frame({{"type", "result"}, {"env", {{"A", 1}}}})), "not a string");
  expect_502(call_fails("env", frame({{"type", "result"}, {"env", "A=1"}})), "not an object");
  expect_502(call_fails("list", frame({{"type", "result"}, {"entries", {{{"name", 5}}}}})),
             "entry's name is not a string");
  expect_502(call_fails("list", frame({{"type", "result"}, {"entries", {"x"}}})), "entry is not an object");
  expect_502(call_fails("stat", frame({{"type", "result"}, {"entry", json::array()}})), "not an object");
  expect_502(call_fails("list_processes",
                        frame({{"type", "result"}, {"processes", {{{"pid", 1}, {"cmd", "x"}, {"args", {1}}}}}})),
             "process args");
  expect_502(call_fails("watcher_events", frame({{"type", "result"}, {"events", {{{"name", 1}}}}})),
             "event's name");
  expect_502(call_fails("read", frame({{"type", "result"}, {"size", "1"}, {"data", ""}})), "size");
  // A frame the op never sends.
  expect_502(call_fails("env", frame({{"type", "stdout"}, {"data", ""}})), "does not answer env");
  // An error frame of unknown or internal code is the sandbox's failure.
  expect_502(call_fails("env", frame({{"type", "error"}, {"code", "bogus"}, {"message", "m"}})), "m");
  expect_502(call_fails("env", frame({{"type", "error"}, {"code", "internal"}, {"message", "boom"}})), "boom");
  expect_502(call_fails("env", frame({{"type", "error"}, {"code", 5}})), "error frame's code");
  // Well-formed answers still pass.
  fake.answer(frame({{"type", "result"}, {"env", {{"A", "1"}}}}));
  auto ok = agent::call(fake.socket(), {{"op", "env"}}, 5s);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ((*ok)["env"]["A"], "1");
  fake.answer(frame({{"type", "error"}, {"code", "not_found"}, {"message", "no such file"}}));
  auto nf = agent::call(fake.socket(), {{"op", "stat"}}, 5s);
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.error().status, 404);
}

TEST_F(AgentAnswers, a_run_is_whole_or_502_never_exit_code_minus_one) {
  expect_502(run_fails(frame({{"type", "result"}})), "does not answer exec");
  expect_502(run_fails(frame(exec_start)), "connection closed");
  expect_502(run_fails(frame(exec_start) + frame({{"type", "end"}})), "end frame has no exit_code");
  expect_502(run_fails(frame(exec_start) + frame({{"type", "end"}, {"exit_code", "0"}, {"exited", true}})),
             "exit_code is not an integer");
  expect_502(run_fails(frame({{"type", "start"}, {"pid", "7"}})), "pid");
  expect_502(run_fails(frame(exec_start) + frame({{"type", "stdout"}, {"data", "!!!"}}) + frame(exec_end)),
             "not base64");
  expect_502(run_fails(frame(exec_start) + frame({{"type", "stdout"}, {"data", 1}}) + frame(exec_end)),
             "stdout frame's data");
}

TEST_F(AgentAnswers, a_run_keeps_bytes_intact_and_bounded) {
  std::string binary("\xff\xfe\x00\x80 ok\n", 8);
  std::string chunk(600 * 1024, 'y');
  std::string answer = frame(exec_start) + frame({{"type", "stdout"}, {"data", base64::encode(binary)}});
  for (int i = 0; i < 4; ++i)
    answer += frame({{"type", "stdout"}, {"data", base64::encode(chunk)}});
  answer += frame({{"type", "stderr"}, {"data", base64::encode("e")}}) + frame(exec_end);
  fake.answer(answer);
  auto r = agent::run(fake.socket(), {{"cmd", "x"}}, 5s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->pid, 7);
  EXPECT_EQ(r->stdout_data.size(), agent::kRunOutputLimit);
  EXPECT_EQ(r->stdout_data.substr(0, binary.size()), binary);
  EXPECT_TRUE(r->stdout_truncated);
  EXPECT_EQ(r->stderr_data, "e");
  EXPECT_FALSE(r->stderr_truncated);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_TRUE(r->exited);
}

TEST_F(AgentAnswers, a_stream_connection_reports_garbage_as_closed_with_the_reason) {
  fake.answer(frame(exec_start) + frame({{"type", "end"}, {"exit_code", true}}));
  auto c = agent::connection::open(fake.socket(), {{"op", "exec"}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  json f;
  std::string detail;
  ASSERT_EQ((*c)->next(f, 5000ms, &detail), agent::connection::next_status::frame) << detail;
  EXPECT_EQ(f["pid"], 7);
  ASSERT_EQ((*c)->next(f, 5000ms, &detail), agent::connection::next_status::closed);
  EXPECT_NE(detail.find("exit_code is not an integer"), std::string::npos) << detail;
}

TEST(AgentOutputText, log_lines_are_utf8_and_bounded) {
  EXPECT_EQ(utf8_lossy("a\xff" "b"), "a\xef\xbf\xbd" "b");
  EXPECT_EQ(utf8_lossy("h\xc3\xa9"), "h\xc3\xa9");
  output_lines lines{"stdout"};
  std::vector<store::log_line> out;
  // A character split across two chunks survives; a stray byte does not.
  lines.feed("caf\xc3", 1, out);
  lines.feed("\xa9\n\xff\n", 1, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].line, "caf\xc3\xa9");
  EXPECT_EQ(out[1].line, "\xef\xbf\xbd");
  // Output without newlines is cut into pieces, never kept whole.
  out.clear();
  lines.feed(std::string(3 * output_lines::max_line + 5, 'x'), 1, out);
  EXPECT_EQ(out.size(), 3u);
  lines.flush(1, out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[3].line, "xxxxx");
}
