#include "actors/event_log.hpp"

#include <spdlog/spdlog.h>

#include <map>

#include "actors/executor.hpp"
#include "core/clock.hpp"
#include "storage/store.hpp"

namespace sandboxd {

namespace {

/// Appends waiting for the next synced write, in arrival order.
struct pending_appends {
  std::vector<event> events;
  std::vector<caf::typed_response_promise<event>> promises;
  bool flush_queued = false;
};

/// Upper bound on one batch: keeps a write (and the latency of the first
/// append in it) short when thousands arrive at once.
constexpr size_t max_group = 1024;

/// Long polls waiting for the log to grow, by id.
struct waiters {
  uint64_t newest = 0; // the newest sequence number written
  uint64_t next_id = 0;
  std::map<uint64_t, caf::typed_response_promise<uint64_t>> by_id;
};

constexpr size_t max_waiters = 4096;

} // namespace

event_log_actor spawn_event_log(caf::actor_system& sys, std::shared_ptr<store> db,
                                webhook_dispatcher_actor webhooks,
                                retention_policy retention) {
  auto writer = [db, webhooks,
                 retention](event_log_actor::pointer self) -> event_log_actor::behavior_type {
    if (retention.keep.count() > 0)
      self->send(self, atom::compact::value);
    auto queue = std::make_shared<pending_appends>();
    auto waiting = std::make_shared<waiters>();
    waiting->newest = db->head().seq;
    return {
      [=](atom::wait, uint64_t after, uint32_t wait_ms) -> caf::result<uint64_t> {
        if (waiting->newest > after || wait_ms == 0 || waiting->by_id.size() >= max_waiters)
          return waiting->newest;
        auto id = waiting->next_id++;
        auto rp = self->make_response_promise<uint64_t>();
        waiting->by_id.emplace(id, rp);
        self->delayed_send(self, std::chrono::milliseconds(wait_ms), atom::timeout::value, id);
        return rp;
      },
      [=](atom::timeout, uint64_t id) {
        auto it = waiting->by_id.find(id);
        if (it == waiting->by_id.end())
          return;
        it->second.deliver(waiting->newest);
        waiting->by_id.erase(it);
      },
      [=](atom::compact) {
        auto dropped = db->compact(now_ms() - retention.keep.count());
        if (!dropped)
          spdlog::error("event log compaction: {}", dropped.error().message);
        else if (*dropped > 0)
          spdlog::info("event log compaction dropped {} events past retention", *dropped);
        self->delayed_send(self, retention.every, atom::compact::value);
      },
      // Group commit: an append only queues. The flush message goes to the
      // back of the mailbox, so every append already waiting there joins
      // this write; those arriving during it form the next one.
      [=](atom::append, event& e) -> caf::result<event> {
        queue->events.push_back(std::move(e));
        queue->promises.push_back(self->make_response_promise<event>());
        if (!queue->flush_queued) {
          queue->flush_queued = true;
          self->send(self, atom::flush::value);
        }
        return queue->promises.back();
      },
      [=](atom::flush) {
        auto n = std::min(queue->events.size(), max_group);
        std::vector<event> batch(std::make_move_iterator(queue->events.begin()),
                                 std::make_move_iterator(queue->events.begin() + n));
        std::vector<caf::typed_response_promise<event>> promises(queue->promises.begin(),
                                                                 queue->promises.begin() + n);
        queue->events.erase(queue->events.begin(), queue->events.begin() + n);
        queue->promises.erase(queue->promises.begin(), queue->promises.begin() + n);
        queue->flush_queued = !queue->events.empty();
        if (queue->flush_queued)
          self->send(self, atom::flush::value);
        auto written = db->append(std::move(batch));
        if (!written) {
          auto err = to_error(written.error());
          for (auto& rp : promises)
            rp.deliver(err);
          return;
        }
        if (!written->empty())
          waiting->newest = written->back().seq;
        for (size_t i = 0; i < promises.size(); ++i)
          promises[i].deliver(std::move((*written)[i]));
        self->send(webhooks, atom::wake::value);
        for (auto& [id, rp] : waiting->by_id)
          rp.deliver(waiting->newest);
        waiting->by_id.clear();
      },
    };
  };
  // Detached in production; on the test scheduler it runs as its other actors do.
  if (on_test_scheduler(sys))
    return sys.spawn(writer);
  return sys.spawn<caf::detached>(writer);
}

} // namespace sandboxd
