#include "runtime/agent/watchers.hpp"

#include <cerrno>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/agent/connection.hpp"
#include "runtime/agent/fs_identity.hpp"
#include "runtime/agent/request.hpp"
#include "runtime/agent/watch_inotify.hpp"

namespace sandboxd::agent {
namespace {

class watcher {
 public:
  watcher(std::unique_ptr<inotify_tree> tree, const user_info& user) : tree_(std::move(tree)) {
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) fail_errno(errno, "eventfd");
    try {
      thread_ = std::thread([this, user] { run(user); });
    } catch (...) {
      ::close(stop_fd_);
      throw;
    }
  }

  // Stops the thread and releases the inotify fd.
  ~watcher() {
    uint64_t one = 1;
    while (::write(stop_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    thread_.join();
    ::close(stop_fd_);
  }

  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;

  json take_events() {
    std::deque<watch_event> taken;
    {
      std::lock_guard<std::mutex> lock(mu_);
      taken.swap(events_);
    }
    json out = json::array();
    for (const auto& e : taken) out.push_back(to_json(e));
    return out;
  }

 private:
  void run(const user_info& user) {
    fs_identity as(user);  // subdirectories created later are watched as the user
    std::vector<watch_event> batch;
    for (;;) {
      pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {tree_ ? tree_->fd() : -1, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[0].revents) return;
      if (!fds[1].revents) continue;
      batch.clear();
      bool alive = true;
      try {
        alive = tree_->read_events(batch);
      } catch (const std::exception&) {
        alive = false;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& e : batch) events_.push_back(std::move(e));
        while (events_.size() > kMaxWatcherEvents) events_.pop_front();
      }
      if (!alive) tree_.reset();  // directory gone: keep the events, drop the watch
    }
  }

  std::unique_ptr<inotify_tree> tree_;  // used only by the thread once it runs
  int stop_fd_ = -1;
  std::mutex mu_;
  std::deque<watch_event> events_;
  std::thread thread_;
};

struct registry {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<watcher>> watchers;
  std::mt19937_64 rng{std::random_device{}()};

  // Never destroyed: connection threads may still use it while the agent exits.
  static registry& instance() {
    static registry* r = new registry;
    return *r;
  }
};

std::string new_id(registry& reg) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "w-%016llx", static_cast<unsigned long long>(reg.rng()));
  return buf;
}

std::shared_ptr<watcher> take_or_find(const json& req, bool take) {
  std::string id = required_string(req, "watcher_id");
  registry& reg = registry::instance();
  std::lock_guard<std::mutex> lock(reg.mu);
  auto it = reg.watchers.find(id);
  if (it == reg.watchers.end()) fail("not_found", "watcher not found: " + id);
  std::shared_ptr<watcher> w = it->second;
  if (take) reg.watchers.erase(it);
  return w;
}

}  // namespace

void handle_watcher_create(int fd, const json& req) {
  user_info user = request_user(req);
  std::string path = resolve_path(user, required_string(req, "path"));
  bool recursive = optional_bool(req, "recursive", false);
  std::unique_ptr<inotify_tree> tree;
  {
    fs_identity as(user);
    tree = std::make_unique<inotify_tree>(path, recursive);
  }
  auto w = std::make_shared<watcher>(std::move(tree), user);
  registry& reg = registry::instance();
  std::string id;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    do {
      id = new_id(reg);
    } while (reg.watchers.count(id));
    reg.watchers.emplace(id, std::move(w));
  }
  send_frame(fd, json{{"type", "result"}, {"watcher_id", id}});
}

void handle_watcher_events(int fd, const json& req) {
  std::shared_ptr<watcher> w = take_or_find(req, false);
  json events = w->take_events();
  w.reset();  // if removed meanwhile, the watcher stops here, outside any lock
  send_frame(fd, json{{"type", "result"}, {"events", std::move(events)}});
}

void handle_watcher_remove(int fd, const json& req) {
  std::shared_ptr<watcher> w = take_or_find(req, true);
  w.reset();  // joins the watcher's thread and closes its fds
  send_frame(fd, json{{"type", "result"}});
}

}  // namespace sandboxd::agent
