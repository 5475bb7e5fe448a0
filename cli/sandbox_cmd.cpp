// `sandboxd sandbox ...`: a client for any sandboxd (or E2B-compatible)
// server, as E2B's CLI is for theirs. Tables for people, --json for scripts;
// exec streams output and exits with the process's code; shell is a PTY.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "cli/commands.hpp"
#include "cli/remote.hpp"
#include "core/url_encode.hpp"
#include "http/connect_protocol.hpp"
#include "runtime/base64.hpp"

namespace sandboxd::cli {

namespace {

const char* sandbox_usage = R"(Usage: sandboxd sandbox COMMAND [flags]
  list                              [--json]
  create [TEMPLATE]                 [--timeout SECONDS] [--metadata K=V,...] [--json]
  info ID                           [--json]
  exec ID [--user U] [--cwd DIR] [--env K=V]... -- CMD [ARGS...]
                                    output as it comes; exits with CMD's code
  shell ID [--user U]               an interactive terminal (a PTY in the sandbox)
  logs ID [-f]                      the sandbox's logs; -f keeps following
  kill ID | pause ID | resume ID [--timeout SECONDS]
  templates                         [--json]   each template's build status and progress
  files get ID PATH [LOCAL]         (no LOCAL: to stdout)
  files put ID LOCAL PATH           (LOCAL - : from stdin)
Server: --api-url URL (E2B_API_URL, default http://127.0.0.1:3000),
        --api-key KEY (E2B_API_KEY), --envd-url URL (E2B_SANDBOX_URL),
        --cacert PEM (SSL_CERT_FILE) for a server whose CA is not the system's.
)";

struct args {
  std::map<std::string, std::string> flags;
  std::vector<std::pair<std::string, std::string>> repeated; // --env
  std::set<std::string> switches;
  std::vector<std::string> positional;
  std::vector<std::string> command; // after --
};

result<args> parse_args(int argc, char** argv, int from) {
  static const std::set<std::string> valued = {"api-url", "api-key", "envd-url", "cacert", "timeout",
                                               "metadata", "user", "cwd", "env"};
  static const std::set<std::string> switches = {"json", "f", "follow"};
  args out;
  for (int i = from; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      out.command.assign(argv + i + 1, argv + argc);
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      out.positional.push_back(a);
      continue;
    }
    auto name = a.substr(a.rfind("--", 0) == 0 ? 2 : 1);
    std::string value;
    auto eq = name.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (switches.count(name)) {
      out.switches.insert(name == "follow" ? "f" : name);
      continue;
    }
    if (!valued.count(name))
      return bad_request("unknown flag " + a);
    if (!has_value) {
      if (i + 1 >= argc)
        return bad_request("flag --" + name + " needs a value");
      value = argv[++i];
    }
    if (name == "env") {
      auto kv = value.find('=');
      if (kv == std::string::npos || kv == 0)
        return bad_request("--env takes K=V");
      out.repeated.emplace_back(value.substr(0, kv), value.substr(kv + 1));
    } else {
      out.flags[name] = value;
    }
  }
  return out;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// Text a sandbox or another user wrote (metadata, names, log lines, error
// messages), made safe for the operator's terminal: control characters (C0,
// DEL, and C1 as UTF-8) become '?', so no escape sequence can move the
// cursor, retitle the window or rewrite what was printed before it.
std::string printable(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += '?';
    } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80
               && static_cast<unsigned char>(s[i + 1]) <= 0x9F) {
      out += '?';
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

int fail(const failure& f) {
  std::fprintf(stderr, "error: %s%s\n", printable(f.message).c_str(),
               f.status >= 400 && f.status < 600 ? (" (" + std::to_string(f.status) + ")").c_str() : "");
  return 1;
}

// A table: columns as wide as their widest cell, two spaces apart.
void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(head.size());
  for (size_t i = 0; i < head.size(); ++i)
    width[i] = head[i].size();
  for (auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size())
        out += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::puts(out.c_str());
  };
  line(head);
  for (auto& r : rows)
    line(r);
}

std::string text_of(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null())
    return "-";
  return printable(j[key].is_string() ? j[key].get<std::string>() : j[key].dump());
}

std::string metadata_text(const json& j) {
  if (!j.contains("metadata") || !j["metadata"].is_object() || j["metadata"].empty())
    return "-";
  std::string out;
  for (auto& [k, v] : j["metadata"].items())
    out += (out.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return printable(out);
}

// Every character past ASCII escaped (\uXXXX): C1 controls are not raw
// bytes on the terminal either.
void print_json(const json& j) {
  std::puts(j.dump(2, ' ', true, json::error_handler_t::replace).c_str());
}

std::vector<std::string> sandbox_row(const json& s) {
  return {text_of(s, "sandboxID"), text_of(s, "templateID"), text_of(s, "state"),
          text_of(s, "startedAt"), text_of(s, "endAt"), metadata_text(s)};
}

const std::vector<std::string> sandbox_head = {"SANDBOX ID", "TEMPLATE", "STATE", "STARTED",
                                               "ENDS", "METADATA"};

result<int> timeout_of(const args& a, int fallback) {
  auto t = a.flags.find("timeout");
  if (t == a.flags.end())
    return fallback;
  char* end = nullptr;
  long v = std::strtol(t->second.c_str(), &end, 10);
  if (!end || *end || v < 1 || v > 30 * 86400)
    return bad_request("--timeout takes whole seconds");
  return static_cast<int>(v);
}

// -- exec and shell ------------------------------------------------------------

struct process_end {
  bool ended = false;
  int exit_code = 0;
  std::string error;
};

// Reads a process stream: output to our stdout/stderr as it comes, the pid
// once known, its end.
class process_stream {
public:
  std::function<void(int64_t)> on_start;
  process_end end;
  std::optional<failure> error;

  bool feed(std::string_view bytes) {
    auto msgs = reader_.feed(bytes);
    if (!msgs) {
      error = msgs.error();
      return false;
    }
    // A message of an unexpected shape ends the stream with a reason, never
    // an exception out of libcurl's callback.
    try {
      return take(*msgs);
    } catch (const json::exception& e) {
      error = failure{502, std::string("the server sent a stream message this client cannot read: ")
                             + e.what()};
      return false;
    }
  }

  static void write_all(int fd, const std::string& s) {
    for (size_t off = 0; off < s.size();) {
      auto n = ::write(fd, s.data() + off, s.size() - off);
      if (n <= 0)
        return;
      off += static_cast<size_t>(n);
    }
  }

private:
  bool take(std::vector<http::connect::envelope_reader::message>& msgs) {
    for (auto& m : msgs) {
      if (m.end) {
        if (m.body.contains("error") && m.body["error"].is_object())
          error = failure{502, m.body["error"].value("message", "the stream ended with an error")};
        return false;
      }
      auto& ev = m.body["event"];
      if (ev.contains("start") && on_start)
        on_start(ev["start"].value("pid", int64_t{0}));
      if (ev.contains("data")) {
        for (auto [key, fd] : {std::pair{"stdout", 1}, {"stderr", 2}, {"pty", 1}}) {
          if (!ev["data"].contains(key) || !ev["data"][key].is_string())
            continue;
          auto bytes = base64::decode(ev["data"][key].get<std::string>());
          if (bytes)
            write_all(fd, *bytes);
        }
      }
      if (ev.contains("end")) {
        end.ended = true;
        end.exit_code = ev["end"].value("exitCode", 0);
        end.error = ev["end"].value("error", "");
      }
    }
    return true;
  }

  http::connect::envelope_reader reader_;
};

// The exit status a process's end stands for in a shell: its code, or 128 +
// the signal's number when it was killed.
int exit_status(const process_end& e) {
  if (e.exit_code >= 0)
    return e.exit_code & 0xff;
  for (auto [name, sig] : {std::pair{"killed", SIGKILL}, {"terminated", SIGTERM},
                           {"interrupt", SIGINT}, {"hangup", SIGHUP}})
    if (e.error.find(name) != std::string::npos)
      return 128 + sig;
  return 255;
}

const std::map<std::string, std::string> stream_headers = {
  {"Content-Type", "application/connect+json"}, {"Connect-Protocol-Version", "1"},
  {"Connect-Timeout-Ms", "0"}};

int exec(remote& r, const args& a) {
  if (a.positional.size() != 1 || a.command.empty())
    return fail(bad_request("usage: sandboxd sandbox exec ID [flags] -- CMD [ARGS...]"));
  auto t = r.target(a.positional[0]);
  if (!t)
    return fail(t.error());
  json process{{"cmd", a.command[0]}, {"args", std::vector<std::string>(a.command.begin() + 1, a.command.end())}};
  if (!a.repeated.empty()) {
    json envs = json::object();
    for (auto& [k, v] : a.repeated)
      envs[k] = v;
    process["envs"] = envs;
  }
  if (auto cwd = a.flags.find("cwd"); cwd != a.flags.end())
    process["cwd"] = cwd->second;
  auto user = a.flags.count("user") ? a.flags.at("user") : "user";
  process_stream ps;
  auto status = r.envd_stream(*t, "/process.Process/Start", stream_headers,
                              http::connect::envelope({{"process", process}, {"stdin", false}}),
                              user, [&ps](std::string_view b) { return ps.feed(b); });
  if (!status)
    return fail(status.error());
  if (ps.error)
    return fail(*ps.error);
  if (!ps.end.ended)
    return fail(failure{502, "the process stream ended without the process's end"});
  return exit_status(ps.end);
}

// The terminal in raw mode while the shell runs, restored however it ends.
class raw_terminal {
public:
  raw_terminal() {
    if (!::isatty(0) || ::tcgetattr(0, &saved_) != 0)
      return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
  }
  ~raw_terminal() {
    if (active_)
      ::tcsetattr(0, TCSANOW, &saved_);
  }

private:
  termios saved_{};
  bool active_ = false;
};

std::atomic<bool> resized{false};

void on_winch(int) {
  resized = true;
}

json terminal_size() {
  winsize ws{};
  if (::ioctl(1, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0)
    ws.ws_col = 80, ws.ws_row = 24;
  return {{"cols", ws.ws_col}, {"rows", ws.ws_row}};
}

int shell(remote& r, const args& a) {
  if (a.positional.size() != 1)
    return fail(bad_request("usage: sandboxd sandbox shell ID"));
  auto t = r.target(a.positional[0]);
  if (!t)
    return fail(t.error());
  auto user = a.flags.count("user") ? a.flags.at("user") : "user";
  auto term = env_or("TERM", "xterm-256color");
  json start{{"process", {{"cmd", "/bin/bash"}, {"args", {"-i", "-l"}},
                          {"envs", {{"TERM", term}, {"LANG", "C.UTF-8"}, {"LC_ALL", "C.UTF-8"}}}}},
             {"pty", {{"size", terminal_size()}}}};
  std::atomic<int64_t> pid{0};
  std::atomic<bool> done{false};
  int wake[2];
  if (::pipe(wake) != 0)
    return fail(internal_error("pipe"));
  process_stream ps;
  ps.on_start = [&pid](int64_t p) { pid = p; };
  result<long> status{0L};
  std::optional<failure> lost;
  {
    raw_terminal raw; // restored at the end of this block, before anything is said
    struct sigaction sa{};
    sa.sa_handler = on_winch;
    ::sigaction(SIGWINCH, &sa, nullptr);
    // The output comes on this thread; keystrokes and resizes go from the
    // main one, each as the unary call the SDK makes.
    std::thread output([&] {
      status = r.envd_stream(*t, "/process.Process/Start", stream_headers,
                             http::connect::envelope(start), user,
                             [&ps](std::string_view b) { return ps.feed(b); });
      done = true;
      char one = 1;
      [[maybe_unused]] auto n = ::write(wake[1], &one, 1);
    });
    // A keystroke or a resize that did not get through: said once the
    // terminal is restored (the shell may have ended meanwhile: not_found).
    auto unary = [&](const std::string& method, const json& body) {
      auto sent = r.envd(*t, "POST", "/process.Process/" + method,
                         {{"Content-Type", "application/json"}, {"Connect-Protocol-Version", "1"}},
                         body.dump(), user);
      if (!sent)
        lost = sent.error();
      else if (sent->status != 200)
        lost = failure_of(*sent);
    };
    bool input_open = true;
    while (!done) {
      // Stdin is not watched before the shell has a pid, nor once it ended
    // (a closed pipe would report its hang-up again and again).
    pollfd fds[2] = {{input_open && pid ? 0 : -1, POLLIN, 0}, {wake[0], POLLIN, 0}};
      int n = ::poll(fds, 2, 200);
      if (resized.exchange(false) && pid)
        unary("Update", {{"process", {{"pid", pid.load()}}}, {"pty", {{"size", terminal_size()}}}});
      if (n <= 0 || !(fds[0].revents & (POLLIN | POLLHUP)) || !pid)
        continue;
      char buf[4096];
      auto got = ::read(0, buf, sizeof buf);
      if (got <= 0) {
        input_open = false; // stdin closed: the shell keeps running until it ends
        continue;
      }
      unary("SendInput", {{"process", {{"pid", pid.load()}}},
                          {"input", {{"pty", base64::encode(std::string_view(buf, static_cast<size_t>(got)))}}}});
    }
    output.join();
  }
  ::close(wake[0]);
  ::close(wake[1]);
  if (!status)
    return fail(status.error());
  if (ps.error)
    return fail(*ps.error);
  if (!ps.end.ended)
    return fail(lost.value_or(failure{502, "the shell's stream ended without its end"}));
  return exit_status(ps.end);
}

// -- logs and files ------------------------------------------------------------

int logs(remote& r, const args& a) {
  if (a.positional.size() != 1)
    return fail(bad_request("usage: sandboxd sandbox logs ID [-f]"));
  auto id = a.positional[0];
  if (!is_sandbox_id(id))
    return fail(bad_request("not a sandbox id: " + id));
  bool follow = a.switches.count("f") > 0;
  int64_t cursor = 0;
  for (;;) {
    // Following ends with the sandbox (its logs outlive it: read them once more).
    bool gone = false;
    if (follow) {
      auto alive = r.api("GET", "/sandboxes/" + id);
      if (!alive && alive.error().status != 404)
        return fail(alive.error());
      gone = !alive;
    }
    auto page = r.api("GET", "/v2/sandboxes/" + id + "/logs?direction=forward&limit=1000&cursor="
                               + std::to_string(cursor));
    if (!page)
      return fail(page.error());
    auto& entries = (*page)["logs"];
    for (auto& e : entries) {
      std::printf("%s %-5s %s\n", text_of(e, "timestamp").c_str(), text_of(e, "level").c_str(),
                  text_of(e, "message").c_str());
    }
    std::fflush(stdout);
    if (!entries.empty()) {
      // The next page starts after the last line shown.
      auto last = entries.back().value("timestamp", "");
      std::tm tm{};
      int ms = 0;
      if (std::sscanf(last.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon,
                      &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) >= 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        cursor = static_cast<int64_t>(::timegm(&tm)) * 1000 + ms + 1;
      }
      if (entries.size() == 1000)
        continue;
    }
    if (!follow || gone)
      return 0;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}


int files(remote& r, const args& a) {
  auto& p = a.positional;
  auto user = a.flags.count("user") ? a.flags.at("user") : "user";
  if (p.size() >= 3 && p[0] == "get" && p.size() <= 4) {
    auto t = r.target(p[1]);
    if (!t)
      return fail(t.error());
    auto got = r.envd(*t, "GET", "/files?path=" + url_encode(p[2], "/") + "&username=" + url_encode(user),
                      {}, "", user);
    if (!got)
      return fail(got.error());
    if (got->status != 200)
      return fail(failure_of(*got));
    if (p.size() == 3) {
      process_stream::write_all(1, got->body);
      return 0;
    }
    std::ofstream out(p[3], std::ios::binary);
    out << got->body;
    return out ? 0 : fail(bad_request("cannot write " + p[3]));
  }
  if (p.size() == 4 && p[0] == "put") {
    std::string body;
    if (p[2] == "-") {
      std::ostringstream in;
      in << std::cin.rdbuf();
      body = in.str();
    } else {
      std::ifstream in(p[2], std::ios::binary);
      if (!in)
        return fail(bad_request("cannot read " + p[2]));
      std::ostringstream all;
      all << in.rdbuf();
      body = all.str();
    }
    auto t = r.target(p[1]);
    if (!t)
      return fail(t.error());
    auto put = r.envd(*t, "POST", "/files?path=" + url_encode(p[3], "/") + "&username=" + url_encode(user),
                      {{"Content-Type", "application/octet-stream"}}, body, user);
    if (!put)
      return fail(put.error());
    return put->status == 200 ? 0 : fail(failure_of(*put));
  }
  return fail(bad_request("usage: sandboxd sandbox files get ID PATH [LOCAL] | put ID LOCAL PATH"));
}

} // namespace

int sandbox(int argc, char** argv) {
  std::string cmd = argc > 2 ? argv[2] : "";
  if (cmd.empty() || cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(sandbox_usage, cmd.empty() ? stderr : stdout);
    return cmd.empty() ? 2 : 0;
  }
  auto a = parse_args(argc, argv, 3);
  if (!a)
    return fail(a.error());
  remote_config c;
  c.api_url = a->flags.count("api-url") ? a->flags["api-url"] : env_or("E2B_API_URL", "http://127.0.0.1:3000");
  c.api_key = a->flags.count("api-key") ? a->flags["api-key"] : env_or("E2B_API_KEY", "");
  c.envd_url = a->flags.count("envd-url") ? a->flags["envd-url"] : env_or("E2B_SANDBOX_URL", "");
  c.ca_file = a->flags.count("cacert") ? a->flags["cacert"] : env_or("SSL_CERT_FILE", "");
  if (c.api_key.empty())
    return fail(bad_request("no API key: --api-key KEY or E2B_API_KEY"));
  remote r{c};
  bool as_json = a->switches.count("json") > 0;
  auto& p = a->positional;
  auto one_id = [&](const char* name) -> std::optional<std::string> {
    if (p.size() != 1) {
      std::fprintf(stderr, "usage: sandboxd sandbox %s ID\n", name);
      return std::nullopt;
    }
    if (!is_sandbox_id(p[0])) {
      fail(bad_request("not a sandbox id: " + p[0]));
      return std::nullopt;
    }
    return p[0];
  };
  if (cmd == "list") {
    // Every page (E2B's lists come 100 at a time at most).
    json all = json::array();
    std::string token;
    do {
      auto page = r.api("GET", "/v2/sandboxes?state=running,paused&limit=100"
                               + (token.empty() ? "" : "&nextToken=" + url_encode(token)),
                        nullptr, &token);
      if (!page)
        return fail(page.error());
      for (auto& s : *page)
        all.push_back(s);
    } while (!token.empty());
    if (as_json)
      return print_json(all), 0;
    std::vector<std::vector<std::string>> rows;
    for (auto& s : all)
      rows.push_back(sandbox_row(s));
    print_table(sandbox_head, rows);
    return 0;
  }
  if (cmd == "create") {
    auto timeout = timeout_of(*a, 300);
    if (!timeout)
      return fail(timeout.error());
    json body{{"templateID", p.empty() ? "base" : p[0]}, {"timeout", *timeout}};
    if (auto m = a->flags.find("metadata"); m != a->flags.end()) {
      json meta = json::object();
      std::stringstream items(m->second);
      for (std::string kv; std::getline(items, kv, ',');) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
          return fail(bad_request("--metadata takes K=V,K=V"));
        meta[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      body["metadata"] = meta;
    }
    auto made = r.api("POST", "/sandboxes", &body);
    if (!made)
      return fail(made.error());
    if (as_json)
      return print_json(*made), 0;
    std::puts(text_of(*made, "sandboxID").c_str());
    return 0;
  }
  if (cmd == "info") {
    auto id = one_id("info");
    if (!id)
      return 2;
    auto s = r.api("GET", "/sandboxes/" + *id);
    if (!s)
      return fail(s.error());
    if (as_json)
      return print_json(*s), 0;
    for (auto key : {"sandboxID", "templateID", "alias", "state", "startedAt", "endAt", "cpuCount",
                     "memoryMB", "diskSizeMB", "envdVersion", "domain"})
      if (s->contains(key))
        std::printf("%-12s %s\n", key, text_of(*s, key).c_str());
    std::printf("%-12s %s\n", "metadata", metadata_text(*s).c_str());
    return 0;
  }
  if (cmd == "kill" || cmd == "pause") {
    auto id = one_id(cmd.c_str());
    if (!id)
      return 2;
    auto done = cmd == "kill" ? r.api("DELETE", "/sandboxes/" + *id)
                              : r.api("POST", "/sandboxes/" + *id + "/pause");
    return done ? 0 : fail(done.error());
  }
  if (cmd == "resume") {
    auto id = one_id("resume");
    if (!id)
      return 2;
    auto timeout = timeout_of(*a, 300);
    if (!timeout)
      return fail(timeout.error());
    json body{{"timeout", *timeout}};
    auto done = r.api("POST", "/sandboxes/" + *id + "/connect", &body);
    return done ? 0 : fail(done.error());
  }
  if (cmd == "templates") {
    auto all = r.api("GET", "/templates");
    if (!all)
      return fail(all.error());
    if (as_json)
      return print_json(*all), 0;
    std::vector<std::vector<std::string>> rows;
    for (auto& t : *all) {
      std::string progress = "-";
      if (t.contains("buildProgress") && t["buildStatus"] != "ready") {
        auto& p = t["buildProgress"];
        progress = std::to_string(p.value("steps", 0)) + " steps";
        if (p.contains("error"))
          progress += ": " + p.value("error", "");
        else if (!p.value("lastStep", "").empty())
          progress += ": " + p.value("lastStep", "").substr(0, 60);
      }
      rows.push_back({text_of(t, "templateID"), text_of(t, "buildStatus"), progress});
    }
    print_table({"TEMPLATE", "STATUS", "PROGRESS"}, rows);
    return 0;
  }
  if (cmd == "exec")
    return exec(r, *a);
  if (cmd == "shell")
    return shell(r, *a);
  if (cmd == "logs")
    return logs(r, *a);
  if (cmd == "files")
    return files(r, *a);
  std::fputs(sandbox_usage, stderr);
  std::fprintf(stderr, "\nunknown command: sandbox %s\n", cmd.c_str());
  return 2;
}

} // namespace sandboxd::cli
