// What each stored record must hold beyond its layout (record_codec.hpp):
// enumerators within their type, ids that are ids. Bytes that decode to
// anything else are not a record this version wrote.
#include "storage/record_codec.hpp"

#include <algorithm>

namespace sandboxd {

namespace {

template <class E>
bool at_most(E x, E last) {
  return static_cast<uint8_t>(x) <= static_cast<uint8_t>(last);
}

bool valid_type(event_type t) {
  return at_most(t, event_type::volume_deleted);
}

} // namespace

bool valid_record(const webhook& x) {
  return !x.id.empty() && std::all_of(x.events.begin(), x.events.end(), valid_type);
}

bool valid_record(const delivery& x) {
  return !x.webhook_id.empty() && valid_type(x.type);
}

bool valid_record(const volume& x) {
  return valid_volume_id(x.id);
}

bool valid_record(const secret_record& x) {
  return valid_secret_id(x.id);
}

bool valid_record(const snapshot_info& x) {
  return !x.id.empty();
}

bool valid_record(const template_build& x) {
  return !x.id.empty() && at_most(x.status, build_status::error);
}

bool valid_record(const user_template& x) {
  return !x.id.empty() && at_most(x.latest_status, build_status::error)
         && (!x.ready || valid_record(*x.ready));
}

bool valid_record(const build_log_entry&) {
  return true;
}

bool valid_record(const sandbox_record& x) {
  return !x.id.empty() && at_most(x.state, sandbox_state::error)
         && (!x.end_reason || at_most(*x.end_reason, kill_reason::node_lost));
}

bool valid_record(const container_sample&) {
  return true;
}

bool valid_record(const store::log_line&) {
  return true;
}

bool valid_record(const store::checkpoint& x) {
  return std::all_of(x.sandboxes.begin(), x.sandboxes.end(),
                     [](auto& r) { return valid_record(r); });
}

bool valid_record(const std::set<std::string>&) {
  return true;
}

} // namespace sandboxd
