#include "runtime/command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <thread>

#include "core/fd_closer.hpp"

extern char** environ;

namespace sandboxd {

result<command_output> run_command(const std::vector<std::string>& argv,
                                   std::chrono::milliseconds timeout,
                                   const std::string& stdio_path, int pass_fd) {
  if (argv.empty())
    return internal_error("run_command: empty argv");
  int capture = memfd_create("sandboxd-cmd", MFD_CLOEXEC);
  if (capture < 0)
    return internal_error(std::string{"memfd_create: "} + strerror(errno));
  int out_fd = capture;
  int file_fd = -1;
  if (!stdio_path.empty()) {
    file_fd = ::open(stdio_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                     0600);
    if (file_fd < 0) {
      ::close(capture);
      return internal_error("open " + stdio_path + ": " + strerror(errno));
    }
    out_fd = file_fd;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
  // dup2 onto 3 clears close-on-exec there, and only in this child.
  if (pass_fd >= 0)
    posix_spawn_file_actions_adddup2(&fa, pass_fd, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (file_fd >= 0)
    ::close(file_fd);
  if (rc != 0) {
    ::close(capture);
    return internal_error("spawn " + argv[0] + ": " + strerror(rc));
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int wstatus = 0;
  bool timed_out = false;
  // A pidfd turns readable when the child exits: woken then, not at the
  // next tick of a sleep-poll (that cost ~8 ms per crun call). Polling stays
  // as the fallback for kernels without pidfd_open.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    auto r = waitpid(pid, &wstatus, WNOHANG);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR) {
      if (pidfd >= 0)
        ::close(pidfd);
      ::close(capture);
      return internal_error(std::string{"waitpid: "} + strerror(errno));
    }
    auto now = std::chrono::steady_clock::now();
    if (now > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &wstatus, 0);
      timed_out = true;
      break;
    }
    if (pidfd >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
      continue;
    }
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(5))
      pause *= 2;
  }
  if (pidfd >= 0)
    ::close(pidfd);
  command_output out;
  out.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  lseek(capture, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(capture, buf, sizeof buf)) > 0)
    out.output.append(buf, static_cast<size_t>(n));
  ::close(capture);
  if (timed_out)
    return internal_error(argv[0] + " timed out after "
                          + std::to_string(timeout.count()) + " ms");
  return out;
}

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos)
    return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    auto end = dirs.find(':', start);
    if (end == std::string::npos)
      end = dirs.size();
    auto dir = dirs.substr(start, end - start);
    auto candidate = (dir.empty() ? std::string{"."} : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return "";
}

result<int> sealed_copy(const std::string& path) {
  auto fail = [&](const std::string& what) { return internal_error(errno_text(what + " " + path)); };
  fd_closer in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.get() < 0)
    return fail("open");
  struct stat st;
  if (::fstat(in.get(), &st) != 0)
    return fail("stat");
  fd_closer copy{::memfd_create("sealed-exe", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
  if (copy.get() < 0)
    return fail("memfd for");
  for (off_t at = 0; at < st.st_size;) {
    auto n = ::sendfile(copy.get(), in.get(), &at, static_cast<size_t>(st.st_size - at));
    if (n <= 0)
      return fail("copy");
  }
  // The seals crun looks for (runc's set): nothing may change it any more.
  if (::fcntl(copy.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
      != 0)
    return fail("seal the copy of");
  return copy.release();
}

} // namespace sandboxd
