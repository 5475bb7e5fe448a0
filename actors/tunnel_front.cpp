// The control node's end of the tunnel: a listening socket per exposed
// sandbox in a directory of its own, an actor that takes the backs'
// messages, one epoll thread for everything (actors/tunnel_pump.hpp).
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "actors/tunnel.hpp"
#include "actors/tunnel_pump.hpp"
#include "core/fd_closer.hpp"
#include "core/ids.hpp"

namespace sandboxd {

namespace {

constexpr const char* suffix = ".sock";
constexpr size_t suffix_len = 5;
constexpr size_t sandbox_id_len = 20;

tunnel_front_actor::behavior_type front_behavior(tunnel_front_actor::pointer self,
                                                 std::shared_ptr<tunnel_pump> pump) {
  // The pump takes a connection's traffic only from its back (the sender).
  auto sender = [self] { return caf::actor_cast<caf::actor_addr>(self->current_sender()); };
  return {
    [pump, sender](atom::tunnel_data, uint64_t conn, std::string& bytes) {
      pump->data(sender(), conn, std::move(bytes));
    },
    [pump, sender](atom::tunnel_ack, uint64_t conn, uint64_t n) {
      pump->ack(sender(), conn, n);
    },
    [pump, sender](atom::tunnel_eof, uint64_t conn) { pump->eof(sender(), conn); },
    [pump, sender](atom::tunnel_close, uint64_t conn) { pump->close(sender(), conn); },
  };
}

// `dir` exists as a directory of ours, mode 0700, not a symlink.
status own_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return internal_error(errno_text("tunnel: mkdir " + dir));
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0)
    return internal_error(errno_text("tunnel: stat " + dir));
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid())
    return internal_error("tunnel: " + dir + " is not a directory of ours");
  if ((st.st_mode & 0777) != 0700 && ::chmod(dir.c_str(), 0700) != 0)
    return internal_error(errno_text("tunnel: chmod " + dir));
  return success();
}

// Sockets a previous run left: only names this front would have made.
void remove_stale_sockets(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    return;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() == sandbox_id_len + suffix_len && name.compare(sandbox_id_len, suffix_len, suffix) == 0 &&
        is_valid_sandbox_id(name.substr(0, sandbox_id_len)))
      ::unlinkat(::dirfd(d), name.c_str(), 0);
  }
  ::closedir(d);
}

} // namespace

result<std::unique_ptr<tunnel_front>> tunnel_front::start(caf::actor_system& sys, std::string dir,
                                                          tunnel_limits limits) {
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  if (dir.empty() || dir.front() != '/')
    return bad_request("tunnel: the socket directory must be an absolute path");
  if (dir.size() + 1 + sandbox_id_len + suffix_len >= sizeof(sockaddr_un::sun_path))
    return bad_request("tunnel: socket directory path too long for a unix socket: " + dir);
  auto owned = own_directory(dir);
  if (!owned)
    return owned.error();
  remove_stale_sockets(dir);
  auto pump = tunnel_pump::create(limits);
  if (!pump)
    return pump.error();
  auto actor = sys.spawn(front_behavior, *pump);
  (*pump)->run(caf::actor_cast<caf::actor_addr>(actor));
  return std::unique_ptr<tunnel_front>(new tunnel_front(std::move(dir), *pump, actor));
}

tunnel_front::tunnel_front(std::string dir, std::shared_ptr<tunnel_pump> pump,
                           tunnel_front_actor actor)
    : dir_(std::move(dir)), pump_(std::move(pump)), actor_(std::move(actor)) {}

tunnel_front::~tunnel_front() {
  pump_->stop(); // closes every connection, telling the backs
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, back] : exposed_)
    ::unlink(path(id).c_str());
}

std::string tunnel_front::path(const std::string& sandbox_id) const {
  return dir_ + "/" + sandbox_id + suffix;
}

status tunnel_front::expose(const std::string& sandbox_id, tunnel_back_actor back) {
  // The id becomes a file name in our directory.
  if (!is_valid_sandbox_id(sandbox_id))
    return bad_request("tunnel: invalid sandbox id");
  if (!back)
    return bad_request("tunnel: no worker for " + sandbox_id);
  std::lock_guard<std::mutex> lock(mu_);
  if (exposed_.count(sandbox_id))
    return conflict("tunnel: " + sandbox_id + " is already exposed");
  auto where = path(sandbox_id);
  fd_closer fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0)
    return internal_error(errno_text("tunnel: socket"));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, where.data(), where.size()); // length checked at start
  ::unlink(where.c_str()); // one a crash left; the directory is ours alone
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return internal_error(errno_text("tunnel: bind " + where));
  // The directory (0700) keeps others out between bind and chmod.
  if (::chmod(where.c_str(), 0600) != 0 || ::listen(fd.get(), 128) != 0) {
    auto f = internal_error(errno_text("tunnel: listen " + where));
    ::unlink(where.c_str());
    return f;
  }
  auto addr_of_back = caf::actor_cast<caf::actor_addr>(back);
  pump_->listen(sandbox_id, fd.release(), caf::actor_cast<caf::strong_actor_ptr>(back));
  exposed_[sandbox_id] = addr_of_back;
  // A back that goes away (its worker's node disconnects, or it exits)
  // takes its connections with it; attached once per back.
  if (watched_.insert(addr_of_back).second) {
    std::weak_ptr<tunnel_pump> weak = pump_;
    caf::actor_cast<caf::abstract_actor*>(back)->attach_functor(
      [weak, addr_of_back](const caf::error&) {
        if (auto p = weak.lock())
          p->lost(addr_of_back);
      });
  }
  return success();
}

void tunnel_front::withdraw(const std::string& sandbox_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (exposed_.erase(sandbox_id) == 0)
    return;
  ::unlink(path(sandbox_id).c_str());
  pump_->unlisten(sandbox_id);
}

void tunnel_front::lost(const tunnel_back_actor& back) {
  auto addr = caf::actor_cast<caf::actor_addr>(back);
  {
    std::lock_guard<std::mutex> lock(mu_);
    watched_.erase(addr);
  }
  pump_->lost(addr);
}

uint64_t tunnel_front::buffered_bytes() const { return pump_->buffered_bytes(); }

size_t tunnel_front::connections() const { return pump_->connections(); }

} // namespace sandboxd
