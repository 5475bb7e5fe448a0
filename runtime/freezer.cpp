#include "runtime/freezer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "core/fd_closer.hpp"
#include "core/ids.hpp"

namespace sandboxd {

namespace {

std::string state_file(const std::string& id) {
  return "/sys/fs/cgroup/freezer/sandboxd/" + id + "/freezer.state";
}

status write_state(const std::string& id, const char* value) {
  if (!is_valid_sandbox_id(id))
    return internal_error("invalid sandbox id " + id);
  fd_closer fd{::open(state_file(id).c_str(), O_WRONLY | O_CLOEXEC)};
  if (fd.get() < 0 || ::write(fd.get(), value, std::strlen(value)) < 0)
    return internal_error(std::string{"cannot write "} + value + " to the sandbox's freezer: "
                          + strerror(errno));
  return success();
}

// Reading the state makes the kernel look at the tasks again.
std::string read_state(const std::string& id) {
  fd_closer fd{::open(state_file(id).c_str(), O_RDONLY | O_CLOEXEC)};
  char buf[32] = {};
  if (fd.get() < 0 || ::read(fd.get(), buf, sizeof(buf) - 1) < 0)
    return {};
  return buf;
}

} // namespace

bool has_freezer(const std::string& id) {
  return is_valid_sandbox_id(id) && ::access(state_file(id).c_str(), W_OK) == 0;
}

status freeze(const std::string& id, std::chrono::milliseconds within) {
  if (auto st = write_state(id, "FROZEN"); !st)
    return st;
  // A task in uninterruptible sleep (disk I/O on a loaded host) freezes only
  // once it wakes: FREEZING may last seconds. Each round asks again, and every
  // second thaws and freezes anew, as runc does: a task can otherwise miss
  // the freeze for good.
  auto start = std::chrono::steady_clock::now();
  auto next_retry = start + std::chrono::seconds(1);
  for (auto nap = std::chrono::microseconds(100);;
       nap = std::min(nap * 2, std::chrono::microseconds(10000))) {
    if (read_state(id).rfind("FROZEN", 0) == 0)
      return success();
    auto now = std::chrono::steady_clock::now();
    if (now > start + within)
      break;
    if (now > next_retry) {
      next_retry = now + std::chrono::seconds(1);
      if (auto st = thaw(id); !st)
        return st;
    }
    if (auto st = write_state(id, "FROZEN"); !st)
      return st;
    std::this_thread::sleep_for(nap);
  }
  if (auto st = thaw(id); !st)
    return failure{st.error().status, "the sandbox did not freeze, nor thaw again: "
                                        + st.error().message};
  return internal_error("the sandbox did not freeze within "
                        + std::to_string(within.count()) + " ms");
}

bool is_frozen(const std::string& id) {
  auto state = read_state(id);
  return state.rfind("FROZEN", 0) == 0 || state.rfind("FREEZING", 0) == 0;
}

status thaw(const std::string& id) { return write_state(id, "THAWED"); }

} // namespace sandboxd
