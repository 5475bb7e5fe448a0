// sandboxd-agent: PID 1 of every sandbox. Serves process and file operations
// to sandboxd over a unix socket, and reaps every child.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/agent/process_table.hpp"
#include "runtime/agent/server.hpp"
#include "runtime/agent_protocol.hpp"

namespace {

void usage() { std::fprintf(stderr, "usage: sandboxd-agent [--socket PATH]\n"); }

void noop_handler(int) {}

// Waits for SIGTERM/SIGINT (blocked in every thread), stops the children and exits.
[[noreturn]] void shutdown_on_signal(sigset_t set, std::string socket_path) {
  int sig = 0;
  while (::sigwait(&set, &sig) != 0) {
  }
  sandboxd::agent::process_table::instance().terminate_all(std::chrono::seconds(2));
  ::unlink(socket_path.c_str());
  ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = sandboxd::agent::kDefaultSocketPath;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) {
      socket_path = argv[++i];
    } else if (a.rfind("--socket=", 0) == 0) {
      socket_path = a.substr(9);
    } else if (a == "--version") {
      std::printf("%s\n", sandboxd::agent::kAgentVersion);
      return 0;
    } else {
      usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }

  // Make sure 0-2 are open so that pipes never land on them.
  int null_fd;
  while ((null_fd = ::open("/dev/null", O_RDWR)) >= 0 && null_fd <= 2) {
  }
  if (null_fd > 2) ::close(null_fd);
  ::umask(022);
  std::signal(SIGPIPE, SIG_IGN);
  // As PID 1, signals without a handler are dropped; install handlers and
  // block them so the dedicated thread receives them via sigwait.
  struct sigaction sa{};
  sa.sa_handler = noop_handler;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGHUP, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Not PID 1 (e.g. tests): still become the reaper of our descendants.
  if (::getpid() != 1) ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  int listen_fd = sandboxd::agent::listen_on(socket_path);
  if (listen_fd < 0) return 1;
  sandboxd::agent::process_table::instance().start_reaper();
  std::thread(shutdown_on_signal, set, socket_path).detach();
  sandboxd::agent::serve_forever(listen_fd);
}
