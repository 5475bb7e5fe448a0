#include "runtime/sandbox_init.hpp"

#include <fstream>

namespace sandboxd {

pid_t recorded_init_pid(const std::string& sandbox_dir) {
  pid_t pid = 0;
  std::ifstream{sandbox_dir + "/init.pid"} >> pid;
  return pid > 1 ? pid : 0;
}

bool is_sandbox_process(pid_t pid, const std::string& id) {
  if (pid <= 1)
    return false;
  auto proc = "/proc/" + std::to_string(pid);
  // "pid (comm) S ...": the state follows the last ')'.
  std::string stat;
  std::getline(std::ifstream{proc + "/stat"}, stat);
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z'
      || stat[paren + 2] == 'X')
    return false;
  std::ifstream in{proc + "/cgroup"};
  std::string line;
  auto suffix = ":/sandboxd/" + id;
  while (std::getline(in, line))
    if (line.size() >= suffix.size()
        && line.compare(line.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  return false;
}

} // namespace sandboxd
