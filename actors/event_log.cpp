#include "actors/event_log.hpp"

#include "storage/store.hpp"

namespace sandboxd {

event_log_actor spawn_event_log(caf::actor_system& sys, std::shared_ptr<store> db,
                                webhook_dispatcher_actor webhooks) {
  return sys.spawn<caf::detached>(
    [db, webhooks](event_log_actor::pointer self) -> event_log_actor::behavior_type {
      return {
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
