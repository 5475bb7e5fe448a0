// The one epoll thread of a tunnel end (actors/tunnel.hpp): its listening
// sockets (front), its connections and their flow control. Its state is
// touched on that thread only: the end's actor and public methods post
// closures to it (a mutex-guarded queue and an eventfd). It sends to the
// peer itself, as the end's actor (send_as), so a connection's messages
// leave in the order its bytes were read.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "actors/tunnel.hpp"
#include "core/result.hpp"

namespace sandboxd {

class tunnel_pump : public std::enable_shared_from_this<tunnel_pump> {
public:
  /// The epoll instance and its wakeup; the thread starts with run().
  static result<std::shared_ptr<tunnel_pump>> create(tunnel_limits limits);
  ~tunnel_pump();
  tunnel_pump(const tunnel_pump&) = delete;
  tunnel_pump& operator=(const tunnel_pump&) = delete;

  /// Starts the thread; `self` is the end's actor, the sender of every
  /// message to a peer (held weakly: the pump never keeps it alive).
  void run(caf::actor_addr self);

  /// Ends the thread (joined, or left to finish when called on it): every
  /// connection is closed and its peer told. Later posts are dropped.
  void stop();

  // Thread-safe; each queues its work for the thread. `from` is the sender
  // of the message being passed on: traffic for a connection counts only
  // from that connection's peer.

  /// Front: accepts on `fd` (listening, non-blocking) for `sandbox`, each
  /// connection carried to `back`. Takes `fd`.
  void listen(std::string sandbox, int fd, caf::strong_actor_ptr back);
  /// Front: closes the sandbox's listener and connections.
  void unlisten(std::string sandbox);
  /// Back: connects `conn` of `front` to `path`.
  void connect(caf::strong_actor_ptr front, uint64_t conn, std::string path);
  /// Back: tells `front` that `conn` could not be opened.
  void refuse(caf::strong_actor_ptr front, uint64_t conn);
  void data(caf::actor_addr from, uint64_t conn, std::string bytes);
  void ack(caf::actor_addr from, uint64_t conn, uint64_t n);
  void eof(caf::actor_addr from, uint64_t conn);
  void close(caf::actor_addr from, uint64_t conn);
  /// `peer` is gone: its connections end; a front's listeners for it hang
  /// up on new connections.
  void lost(caf::actor_addr peer);

  uint64_t buffered_bytes() const { return buffered_.load(); }
  size_t connections() const { return open_.load(); }

private:
  struct conn {
    uint64_t key = 0;            // epoll key; the front's is also the wire id
    uint64_t wire = 0;           // the connection's number in messages
    int fd = -1;
    caf::strong_actor_ptr peer;  // the other end's actor
    caf::actor_addr peer_addr;
    std::string sandbox;
    // Back: connect() retried until `deadline` (EAGAIN: backlog full).
    bool connecting = false;
    std::string path;
    std::chrono::steady_clock::time_point deadline;
    // fd → peer
    bool may_read = true;        // edge-triggered: read until EAGAIN
    bool rd_done = false;        // end of stream read and passed on
    uint64_t unacked = 0;        // sent to the peer, not yet written out there
    // peer → fd
    std::deque<std::string> pending;
    size_t offset = 0;           // into pending.front()
    size_t pending_bytes = 0;
    bool may_write = true;
    bool peer_eof = false;
    bool wr_done = false;        // half-closed after the pending bytes
  };
  struct listener {
    int fd = -1;
    std::string sandbox;
    caf::strong_actor_ptr back;
    caf::actor_addr back_addr;
    bool back_lost = false;
  };

  explicit tunnel_pump(tunnel_limits limits) : limits_(limits) {}
  bool post(std::function<void()> job); // false once stopping
  void loop();

  // On the thread.
  void accept_all(listener& l);
  void add_conn(std::unique_ptr<conn> c);
  void try_connect(conn& c);
  void service(uint64_t key);
  bool pump_write(conn& c);
  bool pump_read(conn& c);
  void settle(conn& c);
  void drop(conn& c, bool tell_peer);
  /// drop() for every connection `which` picks.
  void drop_where(const std::function<bool(const conn&)>& which, bool tell_peer);
  conn* find(const caf::actor_addr& from, uint64_t wire);
  void on_data(const caf::actor_addr& from, uint64_t wire, std::string bytes);
  void on_ack(const caf::actor_addr& from, uint64_t wire, uint64_t n);
  void on_eof(const caf::actor_addr& from, uint64_t wire);
  void on_close(const caf::actor_addr& from, uint64_t wire);
  void on_lost(const caf::actor_addr& peer);
  void retry_connects();
  template <class... Ts>
  void send(const caf::strong_actor_ptr& to, Ts&&... xs);

  const tunnel_limits limits_;
  int epoll_ = -1;
  int wake_ = -1; // eventfd
  caf::actor_addr self_;
  std::thread thread_;

  std::mutex mu_;
  std::vector<std::function<void()>> jobs_;
  bool stopping_ = false;

  // Thread-owned.
  uint64_t next_key_ = 1;
  std::map<uint64_t, std::unique_ptr<conn>> conns_;
  std::map<std::pair<caf::actor_addr, uint64_t>, uint64_t> by_wire_;
  std::map<std::string, size_t> per_sandbox_;
  std::map<uint64_t, listener> listeners_;         // by epoll key (high bit set)
  std::map<std::string, uint64_t> listener_of_;    // sandbox → key
  std::set<caf::actor_addr> lost_;                // peers declared gone
  size_t connecting_ = 0;
  std::vector<char> scratch_;

  std::atomic<uint64_t> buffered_{0};
  std::atomic<size_t> open_{0};
};

} // namespace sandboxd
