// sandboxd-agent: PID 1 of every sandbox. Serves process and file operations
// to sandboxd over a unix socket, and reaps every child.
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/agent/process_table.hpp"
#include "runtime/agent/server.hpp"
#include "runtime/agent_protocol.hpp"

namespace {

void usage() { std::fprintf(stderr, "usage: sandboxd-agent [--socket PATH | --listen-fd N]\n"); }

// A listening unix socket handed over by sandboxd (fd 3 under crun
// --preserve-fds): its path is on the host, where the sandbox cannot reach
// it, so nothing inside can redirect the host's connections.
int inherited_listener(int fd) {
  int listening = 0;
  socklen_t len = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
    std::fprintf(stderr, "sandboxd-agent: fd %d is not a listening socket\n", fd);
    return -1;
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // never inherited by the processes we start
  return fd;
}

void noop_handler(int) {}

// Waits for SIGTERM/SIGINT (blocked in every thread), stops the children and exits.
[[noreturn]] void shutdown_on_signal(sigset_t set, std::string socket_path) {
  int sig = 0;
  while (::sigwait(&set, &sig) != 0) {
  }
  sandboxd::agent::process_table::instance().terminate_all(std::chrono::seconds(2));
  if (!socket_path.empty()) ::unlink(socket_path.c_str());
  ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = sandboxd::agent::kDefaultSocketPath;
  int listen_fd_arg = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--listen-fd" && i + 1 < argc) {
      listen_fd_arg = std::atoi(argv[++i]);
      socket_path.clear();
    } else if (a == "--socket" && i + 1 < argc) {
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

  int listen_fd = listen_fd_arg >= 0 ? inherited_listener(listen_fd_arg)
                                     : sandboxd::agent::listen_on(socket_path);
  if (listen_fd < 0) return 1;
  sandboxd::agent::process_table::instance().start_reaper();
  std::thread(shutdown_on_signal, set, socket_path).detach();
  sandboxd::agent::serve_forever(listen_fd);
}
