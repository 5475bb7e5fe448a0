// Runs the real sandboxd-agent binary on the host (socket in a temp dir) and
// drives it through the host-side client.
#include <fstream>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/agent_client.hpp"
#include "runtime/agent_protocol.hpp"
#include "runtime/base64.hpp"

#ifndef SANDBOXD_AGENT_BINARY
#error "SANDBOXD_AGENT_BINARY must name the sandboxd-agent executable"
#endif

namespace {

using sandboxd::agent::json;
namespace agent = sandboxd::agent;
namespace b64 = sandboxd::base64;
using namespace std::chrono_literals;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sandboxd-agent-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    socket_ = dir_ + "/run/agent.sock";  // parent directory is created by the agent
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::setenv("SANDBOXD_TEST_VAR", "from-agent", 1);
      ::execl(SANDBOXD_AGENT_BINARY, "sandboxd-agent", "--socket", socket_.c_str(), nullptr);
      ::_exit(127);
    }
    auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
      if (agent::call(socket_, {{"op", "ping"}}, 1s).ok()) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "agent did not come up";
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      auto until = std::chrono::steady_clock::now() + 10s;
      pid_t r = 0;
      while ((r = ::waitpid(pid_, &st, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(10ms);
      if (r == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        ADD_FAILURE() << "agent did not exit on SIGTERM";
      } else {
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "agent exit status " << st;
      }
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  sandboxd::result<json> call(json req, std::chrono::milliseconds timeout = 10s) {
    if (!req.contains("user")) req["user"] = "root";
    return agent::call(socket_, req, timeout);
  }

  sandboxd::result<agent::exec_outcome> run(json req, std::chrono::milliseconds timeout = 10s) {
    if (!req.contains("user")) req["user"] = "root";
    return agent::run(socket_, req, timeout);
  }

  // Starts a process and detaches right after its start frame; returns its pid.
  int start_detached(json req) {
    req["op"] = "exec";
    if (!req.contains("user")) req["user"] = "root";
    int pid = 0;
    auto st = agent::stream(
        socket_, req,
        [&](const json& f) {
          if (f.value("type", "") == "start") pid = f.value("pid", 0);
          return false;
        },
        10s);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    return pid;
  }

  // Attaches and collects output until `want` appears (or the end frame).
  std::string read_until(const json& connect_req, const std::string& want, json* end = nullptr) {
    std::string out;
    json req = connect_req;
    req["op"] = "connect";
    auto st = agent::stream(
        socket_, req,
        [&](const json& f) {
          std::string type = f.value("type", "");
          if (type == "stdout" || type == "stderr" || type == "pty") out += *b64::decode(f.value("data", ""));
          if (type == "end" && end) *end = f;
          return want.empty() || out.find(want) == std::string::npos;
        },
        10s);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    return out;
  }

  std::string path(const std::string& rel) { return dir_ + "/" + rel; }

  std::string dir_, socket_;
  pid_t pid_ = -1;
};

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

TEST_F(AgentTest, Ping) {
  auto r = call({{"op", "ping"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)["type"], "result");
  EXPECT_EQ((*r)["pid"], pid_);
  EXPECT_EQ((*r)["version"], "0.1.0");
}

TEST_F(AgentTest, SocketIsPrivate) {
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AgentTest, ExecEcho) {
  auto r = run({{"cmd", "/bin/echo"}, {"args", {"hi"}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->pid, 0);
  EXPECT_EQ(r->stdout_data, "hi\n");
  EXPECT_EQ(r->stderr_data, "");
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_TRUE(r->exited);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->status, "exit status 0");
}

TEST_F(AgentTest, ExecSeparatesStderrAndUsesPath) {
  auto r = run({{"cmd", "bash"}, {"args", {"-c", "echo out; echo err >&2"}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->stdout_data, "out\n");
  EXPECT_EQ(r->stderr_data, "err\n");
}

TEST_F(AgentTest, ExecNonZeroExit) {
  auto r = run({{"cmd", "/bin/bash"}, {"args", {"-c", "exit 3"}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_TRUE(r->exited);
  EXPECT_EQ(r->status, "exit status 3");
}

TEST_F(AgentTest, ExecEnvCwdAndUser) {
  auto r = run({{"cmd", "/bin/bash"},
                {"args", {"-c", "echo $SANDBOXD_TEST_VAR $FOO $HOME $USER; pwd; id -u"}},
                {"env", {{"FOO", "bar"}}},
                {"cwd", dir_}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->stdout_data, "from-agent bar /root root\n" + dir_ + "\n0\n");
}

TEST_F(AgentTest, ExecMissingBinaryIsNotFound) {
  auto r = run({{"cmd", "/nonexistent/binary"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 404);
  EXPECT_EQ(r.error().message, "exec /nonexistent/binary: No such file or directory");

  auto r2 = run({{"cmd", "no-such-command-sandboxd"}});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().status, 404);
}

// The search execvp makes, done by the agent itself (its children are
// cloned sharing its memory, so they cannot set `environ`): the process's
// own PATH, a script without #! run by sh, a file it may not run refused.
TEST_F(AgentTest, ExecSearchesTheProcessPathAndRunsScriptsWithoutShebang) {
  auto bin = dir_ + "/bin";
  ASSERT_EQ(::mkdir(bin.c_str(), 0755), 0);
  {
    std::ofstream script{bin + "/greet"};
    script << "echo hello $1\n";
  }
  ASSERT_EQ(::chmod((bin + "/greet").c_str(), 0755), 0);
  {
    std::ofstream plain{bin + "/plain"};
    plain << "echo never\n";
  }
  auto r = run({{"cmd", "greet"}, {"args", {"you"}}, {"env", {{"PATH", "/nowhere:" + bin}}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->stdout_data, "hello you\n");
  // Not on the agent's own PATH: only the process's counts.
  EXPECT_FALSE(run({{"cmd", "greet"}}).ok());
  auto denied = run({{"cmd", bin + "/plain"}});
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().message, "exec " + bin + "/plain: Permission denied");
}

TEST_F(AgentTest, ExecMissingCwdAndBadRequests) {
  auto r = run({{"cmd", "/bin/true"}, {"cwd", "/does/not/exist"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 404);
  EXPECT_EQ(r.error().message, "cwd does not exist: /does/not/exist");

  auto u = run({{"cmd", "/bin/true"}, {"user", "nosuchuser"}});
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().status, 400);
  EXPECT_EQ(u.error().message, "unknown user: nosuchuser");

  auto m = call({{"op", "exec"}});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().status, 400);
  EXPECT_NE(m.error().message.find("cmd"), std::string::npos);

  auto t = call({{"op", "exec"}, {"cmd", 5}});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().status, 400);
  EXPECT_NE(t.error().message.find("cmd"), std::string::npos);

  auto op = call({{"op", "frobnicate"}});
  ASSERT_FALSE(op.ok());
  EXPECT_EQ(op.error().status, 400);
}

TEST_F(AgentTest, ExecTimeoutKills) {
  auto start = std::chrono::steady_clock::now();
  auto r = run({{"cmd", "/bin/sleep"}, {"args", {"30"}}, {"timeout_ms", 300}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->exited);
  EXPECT_EQ(r->status, "signal: killed");
}

TEST_F(AgentTest, ExecStreamsOutputBeforeExit) {
  // The first chunk must arrive while the process is still running.
  std::atomic<bool> got_first{false};
  auto start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration first_at{};
  auto st = agent::stream(
      socket_, {{"op", "exec"}, {"user", "root"}, {"cmd", "/bin/bash"}, {"args", {"-c", "printf a; sleep 1; printf b"}}},
      [&](const json& f) {
        if (f.value("type", "") == "stdout" && !got_first) {
          got_first = true;
          first_at = std::chrono::steady_clock::now() - start;
        }
        return true;
      },
      10s);
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(got_first);
  EXPECT_LT(first_at, 800ms);
}

TEST_F(AgentTest, SlowClientGetsAllOutput) {
  // The producer outruns the client; back-pressure must not lose bytes.
  size_t bytes = 0;
  json end;
  auto st = agent::stream(
      socket_,
      {{"op", "exec"}, {"user", "root"}, {"cmd", "/bin/bash"}, {"args", {"-c", "head -c 20000000 /dev/zero"}}},
      [&](const json& f) {
        std::string type = f.value("type", "");
        if (type == "stdout") {
          bytes += b64::decode(f.value("data", ""))->size();
          std::this_thread::sleep_for(1ms);
        }
        if (type == "end") end = f;
        return true;
      },
      60s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(bytes, 20000000u);
  EXPECT_EQ(end["exit_code"], 0);
}

TEST_F(AgentTest, BackgroundGrandchildDoesNotBlockEnd) {
  auto start = std::chrono::steady_clock::now();
  auto r = run({{"cmd", "/bin/bash"}, {"args", {"-c", "sleep 3 & echo started"}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->stdout_data, "started\n");
  EXPECT_EQ(r->status, "exit status 0");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2500ms);
}

TEST_F(AgentTest, StdinInputAndClose) {
  std::string out;
  json end;
  auto st = agent::stream(
      socket_, {{"op", "exec"}, {"user", "root"}, {"cmd", "cat"}, {"stdin", true}},
      [&](const json& f) {
        std::string type = f.value("type", "");
        if (type == "start") {
          int pid = f["pid"];
          auto in = agent::call(socket_, {{"op", "input"}, {"pid", pid}, {"data", b64::encode("hello\n")}});
          EXPECT_TRUE(in.ok()) << in.error().message;
          auto in2 = agent::call(socket_, {{"op", "input"}, {"pid", pid}, {"data", b64::encode(all_bytes())}});
          EXPECT_TRUE(in2.ok()) << in2.error().message;
          auto cl = agent::call(socket_, {{"op", "close_stdin"}, {"pid", pid}});
          EXPECT_TRUE(cl.ok()) << cl.error().message;
        } else if (type == "stdout") {
          out += *b64::decode(f.value("data", ""));
        } else if (type == "end") {
          end = f;
        }
        return true;
      },
      10s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(out, "hello\n" + all_bytes());
  EXPECT_EQ(end["exit_code"], 0);
}

TEST_F(AgentTest, InputWithoutStdinFails) {
  int pid = start_detached({{"cmd", "/bin/sleep"}, {"args", {"5"}}});
  auto in = call({{"op", "input"}, {"pid", pid}, {"data", b64::encode("x")}});
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.error().status, 409);
  ASSERT_TRUE(call({{"op", "signal"}, {"pid", pid}, {"signal", "SIGKILL"}}).ok());
  auto missing = call({{"op", "input"}, {"pid", 999999999}, {"data", ""}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().status, 404);
  EXPECT_EQ(missing.error().message, "process not found");
}

TEST_F(AgentTest, ConnectByPidAndTagWithBacklog) {
  int pid = start_detached({{"cmd", "/bin/bash"},
                            {"args", {"-c", "sleep 0.3; echo early; while true; do echo tick; sleep 0.1; done"}},
                            {"tag", "ticker"}});
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(800ms);  // output accumulates while nobody is attached
  std::string by_pid = read_until({{"pid", pid}}, "tick");
  EXPECT_EQ(by_pid.rfind("early\n", 0), 0u) << by_pid;  // backlog replayed first
  std::string by_tag = read_until({{"tag", "ticker"}}, "tick");
  EXPECT_NE(by_tag.find("tick"), std::string::npos);

  // Two clients attached at once both see the end frame.
  json end1, end2;
  std::thread t1([&] { read_until({{"pid", pid}}, "", &end1); });
  std::thread t2([&] { read_until({{"tag", "ticker"}}, "", &end2); });
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(call({{"op", "signal"}, {"pid", pid}, {"signal", "SIGKILL"}}).ok());
  t1.join();
  t2.join();
  EXPECT_EQ(end1["status"], "signal: killed");
  EXPECT_EQ(end2["status"], "signal: killed");

  // A late connect still gets the end frame.
  json late;
  read_until({{"pid", pid}}, "", &late);
  EXPECT_EQ(late["status"], "signal: killed");

  auto unknown = call({{"op", "connect"}, {"tag", "nope"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().status, 404);
}

TEST_F(AgentTest, ListProcesses) {
  int pid = start_detached({{"cmd", "/bin/sleep"}, {"args", {"30"}}, {"tag", "sleeper"}, {"env", {{"A", "B"}}}});
  ASSERT_GT(pid, 0);
  auto r = call({{"op", "list_processes"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  bool found = false;
  for (const auto& p : (*r)["processes"]) {
    if (p["pid"] != pid) continue;
    found = true;
    EXPECT_EQ(p["tag"], "sleeper");
    EXPECT_EQ(p["cmd"], "/bin/sleep");
    EXPECT_EQ(p["args"], json({"30"}));
    EXPECT_EQ(p["env"], json({{"A", "B"}}));
    EXPECT_EQ(p["pty"], false);
    EXPECT_TRUE(p["cwd"].is_string());
  }
  EXPECT_TRUE(found) << r->dump();
  ASSERT_TRUE(call({{"op", "signal"}, {"pid", pid}, {"signal", "SIGKILL"}}).ok());
  json end;
  read_until({{"pid", pid}}, "", &end);
  auto after = call({{"op", "list_processes"}});
  ASSERT_TRUE(after.ok());
  for (const auto& p : (*after)["processes"]) EXPECT_NE(p["pid"], pid);
}

TEST_F(AgentTest, SecretEnvIsSetButNeverListedOrEchoed) {
  const std::string key = "sk-test-0123456789abcdef";
  // The process sees the secret; its output shows it redacted.
  auto r = run({{"cmd", "/bin/sh"},
                {"args", {"-c", "echo \"key=$LLM_KEY\"; echo \"$LLM_KEY\" >&2"}},
                {"secret_env", {{"LLM_KEY", key}}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->stdout_data, "key=[redacted]\n");
  EXPECT_EQ(r->stderr_data, "[redacted]\n");
  // Another process printing the same value is redacted too.
  auto other = run({{"cmd", "/bin/echo"}, {"args", {"x" + key + "y"}}});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->stdout_data, "x[redacted]y\n");
  // Listings show the plain env only.
  int pid = start_detached({{"cmd", "/bin/sleep"}, {"args", {"30"}}, {"env", {{"A", "B"}}},
                            {"secret_env", {{"LLM_KEY", key}}}});
  ASSERT_GT(pid, 0);
  auto list = call({{"op", "list_processes"}});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->dump().find(key), std::string::npos) << list->dump();
  ASSERT_TRUE(call({{"op", "signal"}, {"pid", pid}, {"signal", "SIGKILL"}}).ok());
  json end;
  read_until({{"pid", pid}}, "", &end);
}

TEST_F(AgentTest, SignalTerm) {
  json end;
  auto st = agent::stream(
      socket_, {{"op", "exec"}, {"user", "root"}, {"cmd", "/bin/sleep"}, {"args", {"30"}}},
      [&](const json& f) {
        if (f.value("type", "") == "start") {
          auto s = agent::call(socket_, {{"op", "signal"}, {"pid", f["pid"]}, {"signal", "SIGTERM"}});
          EXPECT_TRUE(s.ok()) << s.error().message;
        }
        if (f.value("type", "") == "end") end = f;
        return true;
      },
      10s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(end["status"], "signal: terminated");
  EXPECT_EQ(end["signal"], SIGTERM);
  EXPECT_EQ(end["exited"], false);
  EXPECT_EQ(end["timed_out"], false);
}

TEST_F(AgentTest, PtyExecAndResize) {
  std::string out;
  json end;
  bool resized = false;
  int pid = 0;
  auto st = agent::stream(
      socket_,
      {{"op", "exec"},
       {"user", "root"},
       {"cmd", "/bin/bash"},
       {"args", {"-c", "test -t 1 && echo is-a-tty; stty size; read line; stty size"}},
       {"pty", {{"cols", 80}, {"rows", 24}}}},
      [&](const json& f) {
        std::string type = f.value("type", "");
        EXPECT_NE(type, "stdout");
        EXPECT_NE(type, "stderr");
        if (type == "start") pid = f["pid"];
        if (type == "pty") out += *b64::decode(f.value("data", ""));
        if (!resized && out.find("24 80") != std::string::npos) {
          resized = true;
          auto r = agent::call(socket_, {{"op", "resize"}, {"pid", pid}, {"cols", 100}, {"rows", 40}});
          EXPECT_TRUE(r.ok()) << r.error().message;
          auto in = agent::call(socket_, {{"op", "input"}, {"pid", pid}, {"data", b64::encode("go\n")}});
          EXPECT_TRUE(in.ok()) << in.error().message;
        }
        if (type == "end") end = f;
        return true;
      },
      10s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_NE(out.find("is-a-tty"), std::string::npos) << out;
  EXPECT_NE(out.find("40 100"), std::string::npos) << out;
  EXPECT_EQ(end["exit_code"], 0);
}

TEST_F(AgentTest, WriteReadBinaryExact) {
  std::string data = all_bytes();
  auto w = call({{"op", "write"}, {"path", path("bin/data.bin")}, {"data", b64::encode(data)}});
  ASSERT_TRUE(w.ok()) << w.error().message;
  const json& e = (*w)["entry"];
  EXPECT_EQ(e["name"], "data.bin");
  EXPECT_EQ(e["path"], path("bin/data.bin"));
  EXPECT_EQ(e["type"], "file");
  EXPECT_EQ(e["size"], 256);
  auto r = call({{"op", "read"}, {"path", path("bin//./data.bin")}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)["size"], 256);
  EXPECT_EQ(*b64::decode((*r)["data"].get<std::string>()), data);
}

TEST_F(AgentTest, ReadErrors) {
  auto missing = call({{"op", "read"}, {"path", path("nope.txt")}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().status, 404);
  EXPECT_EQ(missing.error().message, "path not found: " + path("nope.txt"));

  ASSERT_TRUE(call({{"op", "write"}, {"path", path("big.txt")}, {"data", b64::encode(std::string(100, 'x'))}}).ok());
  auto big = call({{"op", "read"}, {"path", path("big.txt")}, {"max_bytes", 10}});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().status, 400);
  EXPECT_EQ(big.error().message, "file is larger than 10 bytes");
  EXPECT_TRUE(call({{"op", "read"}, {"path", path("big.txt")}, {"max_bytes", 100}}).ok());

  auto dir = call({{"op", "read"}, {"path", dir_}});
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().status, 400);
  EXPECT_EQ(dir.error().message, "path is a directory: " + dir_);

  auto bad = call({{"op", "write"}, {"path", path("x")}, {"data", "not base64!"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().status, 400);
}

TEST_F(AgentTest, StatEntry) {
  ASSERT_TRUE(call({{"op", "write"}, {"path", path("s.txt")}, {"data", b64::encode("hello")}}).ok());
  auto r = call({{"op", "stat"}, {"path", path("s.txt")}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  const json& e = (*r)["entry"];
  EXPECT_EQ(e["name"], "s.txt");
  EXPECT_EQ(e["type"], "file");
  EXPECT_EQ(e["size"], 5);
  EXPECT_EQ(e["mode"], 0644);
  EXPECT_EQ(e["permissions"], "-rw-r--r--");
  EXPECT_EQ(e["owner"], "root");
  EXPECT_EQ(e["group"], "root");
  EXPECT_GT(e["mtime_ms"].get<int64_t>(), 1600000000000LL);
  EXPECT_FALSE(e.contains("symlink_target"));

  ASSERT_EQ(::symlink("s.txt", path("link").c_str()), 0);
  auto l = call({{"op", "stat"}, {"path", path("link")}});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)["entry"]["type"], "symlink");
  // envd's symlinkTarget: the absolute, resolved path.
  EXPECT_EQ((*l)["entry"]["symlink_target"], path("s.txt"));
  ASSERT_EQ(::symlink("nowhere.txt", path("dangling").c_str()), 0);
  auto g = call({{"op", "stat"}, {"path", path("dangling")}});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ((*g)["entry"]["symlink_target"], path("nowhere.txt"));

  auto d = call({{"op", "stat"}, {"path", dir_}});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["entry"]["type"], "dir");
  EXPECT_EQ((*d)["entry"]["permissions"], "drwxr-xr-x");

  auto missing = call({{"op", "stat"}, {"path", path("missing")}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().status, 404);
}

TEST_F(AgentTest, ListDepth) {
  for (const char* f : {"t/a.txt", "t/sub/b.txt", "t/sub/deeper/c.txt"})
    ASSERT_TRUE(call({{"op", "write"}, {"path", path(f)}, {"data", b64::encode("x")}}).ok());
  ASSERT_EQ(::symlink(path("t/sub").c_str(), path("t/zlink").c_str()), 0);

  auto names = [](const json& r) {
    std::vector<std::string> out;
    for (const auto& e : r["entries"]) out.push_back(e["path"]);
    return out;
  };
  auto d1 = call({{"op", "list"}, {"path", path("t")}, {"depth", 1}});
  ASSERT_TRUE(d1.ok()) << d1.error().message;
  EXPECT_EQ(names(*d1), (std::vector<std::string>{path("t/a.txt"), path("t/sub"), path("t/zlink")}));
  auto d2 = call({{"op", "list"}, {"path", path("t")}, {"depth", 2}});
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(names(*d2), (std::vector<std::string>{path("t/a.txt"), path("t/sub"), path("t/sub/b.txt"),
                                                  path("t/sub/deeper"), path("t/zlink")}));
  EXPECT_EQ((*d2)["entries"][1]["type"], "dir");
  EXPECT_EQ((*d2)["entries"][4]["type"], "symlink");

  auto notdir = call({{"op", "list"}, {"path", path("t/a.txt")}});
  ASSERT_FALSE(notdir.ok());
  EXPECT_EQ(notdir.error().status, 400);
  auto missing = call({{"op", "list"}, {"path", path("nothing")}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().status, 404);
}

// Bytes that are not UTF-8 (output, file names, error messages) never break
// the agent: output travels as base64, names are sent with U+FFFD.
TEST_F(AgentTest, BytesThatAreNotUtf8) {
  auto r = run({{"cmd", "/bin/sh"}, {"args", {"-c", "printf 'a\\377\\376b'; printf '\\300' >&2"}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->stdout_data, "a\xff\xfe" "b");
  EXPECT_EQ(r->stderr_data, "\xc0");
  ASSERT_TRUE(call({{"op", "mkdir"}, {"path", path("u")}}).ok());
  int fd = ::open(path("u/bad\xffname").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto l = call({{"op", "list"}, {"path", path("u")}});
  ASSERT_TRUE(l.ok()) << l.error().message;
  ASSERT_EQ((*l)["entries"].size(), 1u);
  EXPECT_EQ((*l)["entries"][0]["name"], "bad\xef\xbf\xbdname");
  auto missing = call({{"op", "stat"}, {"path", path("u/gone\xfe")}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().status, 404);
  EXPECT_TRUE(call({{"op", "ping"}}).ok());
}

TEST_F(AgentTest, MkdirMoveRemove) {
  auto m = call({{"op", "mkdir"}, {"path", path("a/b/c")}});
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ((*m)["created"], true);
  EXPECT_EQ((*m)["entry"]["type"], "dir");
  auto again = call({{"op", "mkdir"}, {"path", path("a/b/c")}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)["created"], false);

  ASSERT_TRUE(call({{"op", "write"}, {"path", path("a/f.txt")}, {"data", b64::encode("move me")}}).ok());
  auto mv = call({{"op", "move"}, {"from", path("a/f.txt")}, {"to", path("x/y/g.txt")}});
  ASSERT_TRUE(mv.ok()) << mv.error().message;
  EXPECT_EQ((*mv)["entry"]["path"], path("x/y/g.txt"));
  EXPECT_EQ(call({{"op", "stat"}, {"path", path("a/f.txt")}}).error().status, 404);
  auto rd = call({{"op", "read"}, {"path", path("x/y/g.txt")}});
  ASSERT_TRUE(rd.ok());
  EXPECT_EQ(*b64::decode((*rd)["data"].get<std::string>()), "move me");
  auto mv_missing = call({{"op", "move"}, {"from", path("nope")}, {"to", path("nope2")}});
  ASSERT_FALSE(mv_missing.ok());
  EXPECT_EQ(mv_missing.error().status, 404);

  ASSERT_TRUE(call({{"op", "write"}, {"path", path("a/b/c/deep.txt")}, {"data", ""}}).ok());
  auto rm = call({{"op", "remove"}, {"path", path("a")}});
  ASSERT_TRUE(rm.ok()) << rm.error().message;
  EXPECT_EQ(call({{"op", "stat"}, {"path", path("a")}}).error().status, 404);
  auto rm_missing = call({{"op", "remove"}, {"path", path("a")}});
  ASSERT_FALSE(rm_missing.ok());
  EXPECT_EQ(rm_missing.error().status, 404);
  // Already gone is done when asked so (envd's Remove is a RemoveAll).
  auto rm_gone = call({{"op", "remove"}, {"path", path("a")}, {"missing_ok", true}});
  EXPECT_TRUE(rm_gone.ok()) << rm_gone.error().message;
}

TEST_F(AgentTest, StreamUploadDownload5MiB) {
  std::string data(5 * 1024 * 1024 + 123, '\0');
  std::mt19937 rng(42);
  for (auto& c : data) c = static_cast<char>(rng());
  size_t off = 0;
  auto w = agent::write_stream(
      socket_, {{"path", path("up/big.bin")}, {"user", "root"}},
      [&]() -> std::optional<std::string> {
        if (off >= data.size()) return std::nullopt;
        size_t n = std::min<size_t>(1 << 20, data.size() - off);
        std::string chunk = data.substr(off, n);
        off += n;
        return chunk;
      },
      30s);
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_EQ((*w)["entry"]["size"], data.size());

  std::string got;
  int64_t start_size = -1, end_size = -1;
  auto st = agent::stream(
      socket_, {{"op", "read_stream"}, {"path", path("up/big.bin")}, {"user", "root"}},
      [&](const json& f) {
        std::string type = f.value("type", "");
        if (type == "start") start_size = f["size"];
        if (type == "chunk") {
          auto bytes = b64::decode(f.value("data", ""));
          EXPECT_TRUE(bytes && bytes->size() <= 256 * 1024);
          got += *bytes;
        }
        if (type == "result") end_size = f["size"];
        return true;
      },
      30s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(start_size, static_cast<int64_t>(data.size()));
  EXPECT_EQ(end_size, static_cast<int64_t>(data.size()));
  EXPECT_TRUE(got == data);
  // No temp files left behind.
  auto l = call({{"op", "list"}, {"path", path("up")}});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)["entries"].size(), 1u);
}

TEST_F(AgentTest, WriteStreamErrorIsReported) {
  ASSERT_TRUE(call({{"op", "mkdir"}, {"path", path("adir")}}).ok());
  int calls = 0;
  auto w = agent::write_stream(
      socket_, {{"path", path("adir")}, {"user", "root"}},
      [&]() -> std::optional<std::string> {
        if (++calls > 3) return std::nullopt;
        return std::string(1000, 'x');
      },
      10s);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().status, 400);

  // Rejected before any data is read: the client still gets the answer.
  auto u = agent::write_stream(
      socket_, {{"path", path("u.bin")}, {"user", "nosuchuser"}},
      [&]() -> std::optional<std::string> { return std::string(1 << 20, 'y'); }, 10s);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().status, 400);
  EXPECT_EQ(u.error().message, "unknown user: nosuchuser");
}

TEST_F(AgentTest, EnvOp) {
  auto r = call({{"op", "env"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)["env"]["SANDBOXD_TEST_VAR"], "from-agent");
}

TEST_F(AgentTest, MalformedFramesDoNotKillAgent) {
  auto raw = [&](const std::string& bytes) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    char buf[4096];
    while (::recv(fd, buf, sizeof(buf), 0) > 0) {
    }
    ::close(fd);
  };
  raw(std::string("\xff\xff\xff\xff", 4));                  // huge length
  raw(std::string("\x00\x00\x00\x05", 4) + "{{{{{");        // not JSON
  raw(std::string("\x00\x00\x00\x02", 4) + "[]");           // not an object
  raw(std::string("\x00\x00\x01\x00", 4) + "{\"op\":");     // truncated
  raw("");                                                   // nothing at all
  auto r = call({{"op", "ping"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto noop = call({{"op", 42}});
  ASSERT_FALSE(noop.ok());
  EXPECT_EQ(noop.error().status, 400);
}

TEST_F(AgentTest, UnreachableAgent) {
  auto r = agent::call(dir_ + "/no.sock", {{"op", "ping"}}, 1s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 502);
  EXPECT_EQ(r.error().message.rfind("sandbox agent unreachable: ", 0), 0u);
}

TEST_F(AgentTest, LinkToTheSocketIsNotFollowed) {
  // A link planted where the socket should be (the live agent's socket is
  // its target) is refused, not followed: the host connects to sockets only.
  auto link = dir_ + "/link.sock";
  ASSERT_EQ(::symlink(socket_.c_str(), link.c_str()), 0);
  auto r = agent::call(link, {{"op", "ping"}}, 1s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 502);
  EXPECT_NE(r.error().message.find("not a socket"), std::string::npos) << r.error().message;
  EXPECT_TRUE(agent::call(socket_, {{"op", "ping"}}, 1s).ok());
}

TEST_F(AgentTest, ActsAsUnprivilegedUser) {
  // Hosts have no "user"; "nobody" exercises the same identity switching.
  auto probe = run({{"cmd", "/usr/bin/id"}, {"args", {"-u"}}, {"user", "nobody"}, {"cwd", "/"}});
  if (!probe.ok() && probe.error().message == "unknown user: nobody") GTEST_SKIP() << "no nobody user";
  ASSERT_TRUE(probe.ok()) << probe.error().message;
  EXPECT_EQ(probe->stdout_data, "65534\n");

  ASSERT_EQ(::mkdir(path("open").c_str(), 0777), 0);
  ::chmod(path("open").c_str(), 0777);
  auto w = call({{"op", "write"}, {"path", path("open/sub/n.txt")}, {"data", b64::encode("x")}, {"user", "nobody"}});
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_EQ((*w)["entry"]["owner"], "nobody");
  auto sub = call({{"op", "stat"}, {"path", path("open/sub")}, {"user", "nobody"}});
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ((*sub)["entry"]["owner"], "nobody");

  auto denied = call({{"op", "write"}, {"path", path("root-only.txt")}, {"data", ""}, {"user", "nobody"}});
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().status, 403);
  // The serving thread got its root identity back.
  EXPECT_TRUE(call({{"op", "write"}, {"path", path("root-only.txt")}, {"data", ""}}).ok());
}

// --- directory watching ---

using fs_events = std::vector<std::pair<std::string, std::string>>;  // name, event

void touch(const std::string& p) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << p;
  ::close(fd);
}

bool has_event(const fs_events& events, const std::string& name, const std::string& event) {
  for (const auto& e : events)
    if (e.first == name && e.second == event) return true;
  return false;
}

size_t count_entries(const std::string& dir) {
  std::error_code ec;
  size_t n = 0;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

// Waits until `dir` holds `want` entries (or 5s pass); returns the last count.
size_t wait_for_count(const std::string& dir, size_t want) {
  auto until = std::chrono::steady_clock::now() + 5s;
  size_t n = count_entries(dir);
  while (n != want && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
    n = count_entries(dir);
  }
  return n;
}

// Runs a watch, calling on_start after the start frame; collects fs events
// until stop_at(name, event) is true (or the terminal frame arrives).
sandboxd::status watch_until(const std::string& socket, json req, const std::function<void()>& on_start,
                             const std::function<bool(const std::string&, const std::string&)>& stop_at,
                             fs_events& events, json* terminal = nullptr) {
  req["op"] = "watch";
  if (!req.contains("user")) req["user"] = "root";
  return agent::stream(
      socket, req,
      [&](const json& f) {
        std::string type = f.value("type", "");
        if (type == "start") on_start();
        if (type == "fs") {
          events.emplace_back(f.value("name", ""), f.value("event", ""));
          return !stop_at(events.back().first, events.back().second);
        }
        if (agent::is_terminal(f) && terminal) *terminal = f;
        return true;
      },
      10s);
}

TEST_F(AgentTest, WatchReportsFileEventsInOrder) {
  ASSERT_EQ(::mkdir(path("w").c_str(), 0755), 0);
  fs_events events;
  auto st = watch_until(
      socket_, {{"path", path("w")}},
      [&] {
        int fd = ::open(path("w/a.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, "hello", 5), 5);
        ::close(fd);
        ASSERT_EQ(::chmod(path("w/a.txt").c_str(), 0600), 0);
        ASSERT_EQ(::rename(path("w/a.txt").c_str(), path("w/b.txt").c_str()), 0);
        ASSERT_EQ(::unlink(path("w/b.txt").c_str()), 0);
      },
      [](const std::string& name, const std::string& event) { return name == "b.txt" && event == "remove"; }, events);
  ASSERT_TRUE(st.ok()) << st.error().message;
  std::vector<std::string> first_seen;
  for (const auto& e : events)
    if (std::find(first_seen.begin(), first_seen.end(), e.second) == first_seen.end()) first_seen.push_back(e.second);
  EXPECT_EQ(first_seen, (std::vector<std::string>{"create", "write", "chmod", "rename", "remove"}));
  for (const auto& [name, event] : std::vector<std::pair<std::string, std::string>>{
           {"a.txt", "create"}, {"a.txt", "write"}, {"a.txt", "chmod"}, {"a.txt", "rename"}, {"b.txt", "create"}})
    EXPECT_TRUE(has_event(events, name, event)) << name << " " << event;
  for (const auto& e : events) EXPECT_TRUE(e.first == "a.txt" || e.first == "b.txt") << e.first;
}

TEST_F(AgentTest, WatchRecursiveSeesNewSubdirectories) {
  ASSERT_EQ(::mkdir(path("w").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(path("w/old").c_str(), 0755), 0);
  fs_events events;
  auto st = watch_until(
      socket_, {{"path", path("w")}, {"recursive", true}},
      [&] {
        touch(path("w/old/y"));
        ASSERT_EQ(::mkdir(path("w/sub").c_str(), 0755), 0);
        touch(path("w/sub/x"));
      },
      [&](const std::string&, const std::string&) {
        return has_event(events, "sub/x", "create") && has_event(events, "old/y", "create");
      },
      events);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(has_event(events, "sub", "create"));
}

TEST_F(AgentTest, WatchNonRecursiveIgnoresSubdirectories) {
  ASSERT_EQ(::mkdir(path("w").c_str(), 0755), 0);
  fs_events events;
  auto st = watch_until(
      socket_, {{"path", path("w")}, {"recursive", false}},
      [&] {
        ASSERT_EQ(::mkdir(path("w/sub").c_str(), 0755), 0);
        touch(path("w/sub/x"));
        std::this_thread::sleep_for(100ms);
        touch(path("w/done"));
      },
      [](const std::string& name, const std::string&) { return name == "done"; }, events);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(has_event(events, "sub", "create"));
  for (const auto& e : events) EXPECT_EQ(e.first.find('/'), std::string::npos) << e.first;
}

TEST_F(AgentTest, WatchEndsWhenDirectoryIsDeleted) {
  ASSERT_EQ(::mkdir(path("w").c_str(), 0755), 0);
  fs_events events;
  json terminal;
  auto st = watch_until(
      socket_, {{"path", path("w")}}, [&] { ASSERT_EQ(::rmdir(path("w").c_str()), 0); },
      [](const std::string&, const std::string&) { return false; }, events, &terminal);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(terminal, json({{"type", "end"}}));
  EXPECT_TRUE(has_event(events, ".", "remove"));
}

TEST_F(AgentTest, WatchKeepalive) {
  int keepalives = 0;
  auto st = agent::stream(
      socket_, {{"op", "watch"}, {"path", dir_}, {"user", "root"}, {"keepalive_ms", 50}},
      [&](const json& f) {
        if (f.value("type", "") == "keepalive") ++keepalives;
        return keepalives < 2;
      },
      5s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(keepalives, 2);
}

TEST_F(AgentTest, WatchErrors) {
  touch(path("file.txt"));
  for (const char* op : {"watch", "watcher_create"}) {
    auto missing = call({{"op", op}, {"path", path("missing")}});
    ASSERT_FALSE(missing.ok()) << op;
    EXPECT_EQ(missing.error().status, 404) << op;
    EXPECT_EQ(missing.error().message, "path not found: " + path("missing"));
    auto file = call({{"op", op}, {"path", path("file.txt")}});
    ASSERT_FALSE(file.ok()) << op;
    EXPECT_EQ(file.error().status, 400) << op;
    EXPECT_EQ(file.error().message, "path is not a directory: " + path("file.txt"));
  }
  ASSERT_EQ(::mkdir(path("private").c_str(), 0700), 0);
  auto denied = call({{"op", "watch"}, {"path", path("private")}, {"user", "nobody"}});
  if (!denied.ok() && denied.error().message == "unknown user: nobody") GTEST_SKIP() << "no nobody user";
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().status, 403);
}

TEST_F(AgentTest, WatchClientDisconnectStopsWatch) {
  ASSERT_EQ(::mkdir(path("w").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(path("w/sub").c_str(), 0755), 0);
  std::string fd_dir = "/proc/" + std::to_string(pid_) + "/fd";
  std::string task_dir = "/proc/" + std::to_string(pid_) + "/task";
  ASSERT_TRUE(call({{"op", "ping"}}).ok());
  std::this_thread::sleep_for(100ms);
  size_t fds = count_entries(fd_dir), tasks = count_entries(task_dir);
  ASSERT_GT(fds, 0u);
  for (int i = 0; i < 5; ++i) {
    bool started = false;
    auto st = agent::stream(
        socket_, {{"op", "watch"}, {"path", path("w")}, {"recursive", true}, {"user", "root"}},
        [&](const json& f) {
          started = started || f.value("type", "") == "start";
          return false;  // disconnect right away
        },
        5s);
    ASSERT_TRUE(st.ok()) << st.error().message;
    EXPECT_TRUE(started);
  }
  EXPECT_EQ(wait_for_count(fd_dir, fds), fds);
  EXPECT_EQ(wait_for_count(task_dir, tasks), tasks);
  EXPECT_TRUE(call({{"op", "ping"}}).ok());
}

TEST_F(AgentTest, PollingWatcherLifecycle) {
  ASSERT_EQ(::mkdir(path("p").c_str(), 0755), 0);
  std::string fd_dir = "/proc/" + std::to_string(pid_) + "/fd";
  std::string task_dir = "/proc/" + std::to_string(pid_) + "/task";
  std::this_thread::sleep_for(100ms);
  size_t fds = count_entries(fd_dir), tasks = count_entries(task_dir);

  auto c = call({{"op", "watcher_create"}, {"path", path("p")}, {"recursive", true}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  std::string id = (*c)["watcher_id"];
  ASSERT_FALSE(id.empty());
  struct remover {  // removes the watcher even if an assertion fails
    std::function<void()> fn;
    ~remover() { fn(); }
  } cleanup{[&] { (void)agent::call(socket_, {{"op", "watcher_remove"}, {"watcher_id", id}}); }};

  touch(path("p/a.txt"));
  ASSERT_EQ(::mkdir(path("p/sub").c_str(), 0755), 0);
  std::this_thread::sleep_for(50ms);  // let the watcher pick up sub before sub/x appears
  touch(path("p/sub/x"));
  fs_events events;
  auto until = std::chrono::steady_clock::now() + 5s;
  while (!(has_event(events, "a.txt", "create") && has_event(events, "sub/x", "create")) &&
         std::chrono::steady_clock::now() < until) {
    auto e = call({{"op", "watcher_events"}, {"watcher_id", id}});
    ASSERT_TRUE(e.ok()) << e.error().message;
    for (const auto& ev : (*e)["events"]) events.emplace_back(ev["name"], ev["event"]);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(has_event(events, "a.txt", "create"));
  EXPECT_TRUE(has_event(events, "sub", "create"));
  EXPECT_TRUE(has_event(events, "sub/x", "create"));
  auto drained = call({{"op", "watcher_events"}, {"watcher_id", id}});
  ASSERT_TRUE(drained.ok());
  EXPECT_EQ((*drained)["events"], json::array());

  auto rm = call({{"op", "watcher_remove"}, {"watcher_id", id}});
  ASSERT_TRUE(rm.ok()) << rm.error().message;
  EXPECT_EQ(*rm, json({{"type", "result"}}));
  EXPECT_EQ(wait_for_count(fd_dir, fds), fds);
  EXPECT_EQ(wait_for_count(task_dir, tasks), tasks);
  for (const char* op : {"watcher_events", "watcher_remove"}) {
    auto gone = call({{"op", op}, {"watcher_id", id}});
    ASSERT_FALSE(gone.ok()) << op;
    EXPECT_EQ(gone.error().status, 404) << op;
    EXPECT_EQ(gone.error().message, "watcher not found: " + id);
  }
  auto unknown = call({{"op", "watcher_events"}, {"watcher_id", "nope"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().status, 404);
}

TEST_F(AgentTest, PollingWatcherKeepsNewestEvents) {
  ASSERT_EQ(::mkdir(path("p").c_str(), 0755), 0);
  auto c = call({{"op", "watcher_create"}, {"path", path("p")}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  std::string id = (*c)["watcher_id"];
  struct remover {
    std::function<void()> fn;
    ~remover() { fn(); }
  } cleanup{[&] { (void)agent::call(socket_, {{"op", "watcher_remove"}, {"watcher_id", id}}); }};
  touch(path("p/a"));
  touch(path("p/b"));
  for (int i = 0; i < 10100; ++i)  // alternate files so inotify cannot merge events
    ASSERT_EQ(::chmod(path(i % 2 ? "p/a" : "p/b").c_str(), i % 4 < 2 ? 0600 : 0644), 0);
  touch(path("p/last"));
  std::this_thread::sleep_for(1s);
  auto e = call({{"op", "watcher_events"}, {"watcher_id", id}});
  ASSERT_TRUE(e.ok()) << e.error().message;
  const json& events = (*e)["events"];
  EXPECT_EQ(events.size(), 10000u);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), json({{"name", "last"}, {"event", "create"}}));
}

TEST(Base64, RoundTripAndRejects) {
  for (size_t n = 0; n < 300; ++n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>((i * 37 + n) & 0xff));
    auto d = b64::decode(b64::encode(s));
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(b64::encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(b64::encode("fo"), "Zm8=");
  EXPECT_FALSE(b64::decode("Zm8").has_value());
  EXPECT_FALSE(b64::decode("Zm=8").has_value());
  EXPECT_FALSE(b64::decode("Z!8=").has_value());
  EXPECT_FALSE(b64::decode("Zm9=").has_value());  // non-zero trailing bits
  EXPECT_FALSE(b64::decode("Zg==Zg==").has_value());
}

}  // namespace
