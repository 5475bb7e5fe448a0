#include "actors/event_log.hpp"

#include <spdlog/spdlog.h>

#include "core/clock.hpp"
#include "storage/store.hpp"

namespace sandboxd {

event_log_actor spawn_event_log(caf::actor_system& sys, std::shared_ptr<store> db,
                                webhook_dispatcher_actor webhooks,
                                retention_policy retention) {
  return sys.spawn<caf::detached>(
    [db, webhooks, retention](event_log_actor::pointer self) -> event_log_actor::behavior_type {
      if (retention.keep.count() > 0)
        self->send(self, atom::compact::value);
      return {
        [=](atom::compact) {
          auto dropped = db->compact(now_ms() - retention.keep.count());
          if (!dropped)
            spdlog::error("event log compaction: {}", dropped.error().message);
          else if (*dropped > 0)
            spdlog::info("event log compaction dropped {} events past retention", *dropped);
          self->delayed_send(self, retention.every, atom::compact::value);
        },
        [=](atom::append, event& e) -> caf::result<event> {
          auto r = db->append({std::move(e)});
          if (!r)
            return to_error(r.error());
          self->send(webhooks, atom::wake::value);
          return std::move(r->front());
        },
      };
    });
}

} // namespace sandboxd
