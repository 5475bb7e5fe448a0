// Lifecycle events in E2B's shape, read from the log's per-org and
// per-sandbox indexes. Reads are short index scans; no actor is involved.
#include <sstream>

#include "core/event.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

void list_events(api_context& ctx, request& req, const std::string& sandbox_id) {
  store::event_query q;
  q.org_id = req.org;
  q.sandbox_id = sandbox_id;
  auto offset = int_param(req.query_param("offset"), "offset", 0, 0, 1 << 30);
  auto limit = int_param(req.query_param("limit"), "limit", 10, 1, 100);
  if (!offset)
    return req.out->send_error(offset.error());
  if (!limit)
    return req.out->send_error(limit.error());
  q.offset = static_cast<size_t>(*offset);
  q.limit = static_cast<size_t>(*limit);
  auto asc = req.query_param("orderAsc").value_or("false");
  if (asc != "true" && asc != "false")
    return req.out->send_error(bad_request("orderAsc must be true or false"));
  q.ascending = asc == "true";
  if (auto c = req.query_param("cursor"); c && !c->empty()) {
    if (c->size() > 16 || c->find_first_not_of("0123456789abcdef") != std::string::npos)
      return req.out->send_error(bad_request("cursor is not one this server issued"));
    q.after_seq = std::stoull(*c, nullptr, 16);
  }
  if (auto types = req.query_param("types")) {
    std::istringstream in{*types};
    std::string t;
    while (std::getline(in, t, ',')) {
      auto parsed = parse_event_type(t);
      if (!parsed)
        return req.out->send_error(bad_request("unknown event type: " + t));
      q.types.push_back(*parsed);
    }
  }
  bool more = false;
  auto events = ctx.db->query_events(q, &more);
  if (!events)
    return req.out->send_error(events.error());
  auto arr = json::array();
  for (auto& e : *events)
    arr.push_back(to_json(e));
  // The cursor names the last event served (hex seq): appends never move it.
  std::map<std::string, std::string> headers;
  if (more && !events->empty()) {
    std::ostringstream hex;
    hex << std::hex << events->back().seq;
    headers["X-Next-Token"] = hex.str();
  }
  req.out->send_json_with_headers(200, arr, headers);
}

} // namespace

void org_events(api_context& ctx, request& req) {
  list_events(ctx, req, "");
}

// Events of a sandbox of another org are simply absent: an empty list, the
// same answer as for an id that never existed.
void sandbox_events(api_context& ctx, request& req) {
  list_events(ctx, req, req.params.at("id"));
}

// The chain's head, for an auditor to pin and later check `audit verify`
// against. Global (the chain spans every org): a sequence number and a hash,
// nothing of any event's content.
void audit_head(api_context& ctx, request& req) {
  auto h = ctx.db->head();
  req.out->send_json(200, {{"seq", h.seq}, {"hash", h.hash}});
}

} // namespace sandboxd::http
