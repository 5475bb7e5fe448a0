// Lifecycle events in E2B's shape, read from the log's per-org and
// per-sandbox indexes. Reads are short index scans; no actor is involved.
#include <mutex>
#include <optional>
#include <sstream>

#include "actors/blocking.hpp"
#include "core/clock.hpp"
#include "core/event.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

// Long polls: a wait of at most this, then an empty page.
constexpr int64_t max_wait_s = 30;

// A page of events in E2B's shape, with the cursor of the next one (the
// last event served, hex seq: appends never move it) when there is more.
struct page {
  json events = json::array();
  std::string next;
};

result<page> read_page(const store& db, const store::event_query& q) {
  bool more = false;
  auto events = db.query_events(q, &more);
  if (!events)
    return events.error();
  page p;
  for (auto& e : *events)
    p.events.push_back(to_json(e));
  if (more && !events->empty()) {
    std::ostringstream hex;
    hex << std::hex << events->back().seq;
    p.next = hex.str();
  }
  return p;
}

void send_page(const std::shared_ptr<responder>& out, const page& p) {
  std::map<std::string, std::string> headers;
  if (!p.next.empty())
    headers["X-Next-Token"] = p.next;
  out->send_json_with_headers(200, p.events, headers);
}

// Waits for the log to grow past `head` (at most until `deadline_ms`), then
// reads the page again on the executor (a read may touch the disk): the
// answer as soon as one of the org's events is there, else [] at the end.
void poll_events(caf::event_based_actor* self, std::shared_ptr<store> db, event_log_actor log,
                 store::event_query q, uint64_t head, int64_t deadline_ms,
                 std::shared_ptr<responder> out) {
  auto left = deadline_ms - now_ms();
  if (left <= 0)
    return out->send_json(200, json::array());
  self->request(log, std::chrono::milliseconds(left + 5000), atom::wait::value, head,
                static_cast<uint32_t>(left))
    .then(
      [=](uint64_t newest) {
        if (newest <= head) // the wait ran out
          return out->send_json(200, json::array());
        run_blocking(
          self, false, [db, q] { return read_page(*db, q); },
          [=](result<page> p) {
            if (!p)
              return out->send_error(p.error());
            if (!p->events.empty())
              return send_page(out, *p);
            // Another org's event, or one this query filters out: wait on.
            poll_events(self, db, log, q, newest, deadline_ms, out);
          });
      },
      [=](caf::error& e) { out->send_error(internal_error("waiting for events: " + to_string(e))); });
}

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
  auto wait = int_param(req.query_param("wait"), "wait", 0, 0, max_wait_s);
  if (!wait)
    return req.out->send_error(wait.error());
  if (*wait > 0 && (q.offset != 0 || !q.ascending))
    return req.out->send_error(
      bad_request("wait follows the log: it needs orderAsc=true and no offset"));
  // The log's head before the read: an event appended after it wakes the wait.
  auto head = ctx.db->head().seq;
  auto first = read_page(*ctx.db, q);
  if (!first)
    return req.out->send_error(first.error());
  if (first->events.empty() && *wait > 0 && ctx.event_log) {
    auto deadline = now_ms() + *wait * 1000;
    ctx.sys.spawn([db = ctx.db, log = ctx.event_log, q, head, deadline,
                   out = req.out](caf::event_based_actor* self) {
      poll_events(self, db, log, q, head, deadline, out);
    });
    return;
  }
  send_page(req.out, *first);
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

// POST /events/audit/verify: walks the whole hash chain (every org's events:
// the chain is one) on the reclaim lane, one walk at a time server-wide (429
// meanwhile), and says whether it holds, or where and why it breaks. What
// broke is named by position and reason only: the event may be another org's.
// A verdict stands until the chain grows, so asking again without new
// events costs nothing (and one org asking in a loop keeps nobody out).
void audit_verify(api_context& ctx, request& req) {
  struct last_walk {
    std::mutex mtx;
    bool walking = false;
    std::optional<std::pair<uint64_t, json>> verdict; // head seq, answer
  };
  static last_walk last;
  auto head_now = ctx.db->head().seq;
  {
    std::lock_guard<std::mutex> lock{last.mtx};
    if (last.verdict && last.verdict->first == head_now)
      return req.out->send_json(200, last.verdict->second);
    if (last.walking)
      return req.out->send_error({429, "a verification of the chain is already running: try again shortly"});
    last.walking = true;
  }
  auto db = ctx.db;
  auto out = req.out;
  ctx.sys.spawn([db, out](caf::event_based_actor* self) {
    auto started = now_ms();
    run_blocking(
      self, false,
      [db]() -> result<std::pair<store::verify_report, store::chain_head>> {
        auto head = db->head(); // taken first: the walk covers at least this far
        return std::pair{db->verify(), head};
      },
      [out, started](result<std::pair<store::verify_report, store::chain_head>> r) {
        std::lock_guard<std::mutex> lock{last.mtx};
        last.walking = false;
        if (!r)
          return out->send_error(r.error());
        auto& [report, head] = *r;
        json body = {{"ok", report.ok}, {"checked", report.checked},
                     {"head", {{"seq", head.seq}, {"hash", head.hash}}},
                     {"tookMs", now_ms() - started}};
        if (!report.ok) {
          body["brokenSeq"] = report.broken_seq;
          body["reason"] = report.reason;
        }
        last.verdict = std::pair{head.seq, body};
        out->send_json(200, body);
      },
      lane::reclaim);
  });
}

} // namespace sandboxd::http
