// Metrics: each sandbox's history (E2B's SandboxMetric, sampled by the
// sandbox actor into RocksDB), the latest sample of several sandboxes, and a
// Prometheus text endpoint for operators.
#include <sstream>

#include "core/clock.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/e2b_json.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

// Seconds since the epoch in a query parameter (start/end).
result<std::optional<int64_t>> unix_seconds(const request& req, const std::string& name) {
  auto raw = req.query_param(name);
  if (!raw || raw->empty())
    return std::optional<int64_t>{};
  auto v = int_param(raw, name, 0, 0, int64_t{1} << 40);
  if (!v)
    return v.error();
  return std::optional<int64_t>{*v};
}

} // namespace

// GET /sandboxes/:id/metrics?start&end: the samples in [start, end] (unix
// seconds; default the sandbox's whole life, as far as the history goes).
void sandbox_metrics(api_context& ctx, request& req) {
  auto start = unix_seconds(req, "start");
  if (!start)
    return req.out->send_error(start.error());
  auto end = unix_seconds(req, "end");
  if (!end)
    return req.out->send_error(end.error());
  if (*start && *end && **start > **end)
    return req.out->send_error(bad_request("start must not be after end"));
  auto out = req.out;
  auto db = ctx.db;
  auto from_ms = *start ? **start * 1000 : 0;
  auto to_ms = *end ? **end * 1000 + 999 : INT64_MAX;
  with_record(ctx, req, [=](const sandbox_record& r) {
    auto samples = db->metrics(r.id, from_ms, to_ms);
    if (!samples)
      return out->send_error(samples.error());
    auto arr = json::array();
    for (auto& s : *samples)
      arr.push_back(metric_json(s));
    out->send_json(200, arr);
  });
}

// GET /sandboxes/metrics?sandbox_ids=a,b: the latest sample of each of the
// caller's running or paused sandboxes named (at most 100); others are left
// out, as are sandboxes not sampled yet.
void sandboxes_metrics(api_context& ctx, request& req) {
  auto raw = req.query_param("sandbox_ids").value_or("");
  std::set<std::string> ids;
  std::stringstream ss(raw);
  for (std::string id; std::getline(ss, id, ',');)
    if (!id.empty())
      ids.insert(id);
  if (ids.empty())
    return req.out->send_error(bad_request("sandbox_ids must list at least one sandbox id"));
  if (ids.size() > 100)
    return req.out->send_error(bad_request("sandbox_ids may list at most 100 sandboxes"));
  auto out = req.out;
  auto db = ctx.db;
  with_org_records(ctx, req, [=](const std::vector<sandbox_record>& recs) {
    json by_id = json::object();
    for (auto& r : recs) {
      if (!ids.count(r.id)
          || (r.state != sandbox_state::running && r.state != sandbox_state::paused))
        continue;
      auto s = db->latest_metric(r.id);
      if (!s)
        return out->send_error(s.error());
      if (*s)
        by_id[r.id] = metric_json(**s);
    }
    out->send_json(200, {{"sandboxes", by_id}});
  });
}

// GET /metrics: Prometheus text for operators. Whole-host counts only, no
// ids or names of any org.
void prometheus_metrics(api_context& ctx, request& req) {
  auto out = req.out;
  auto db = ctx.db;
  auto reg = ctx.registry;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::stats::value)
      .then(
        [=](registry_stats& s) {
          std::ostringstream o;
          o << "# HELP sandboxd_sandboxes Live sandboxes by state.\n"
               "# TYPE sandboxd_sandboxes gauge\n";
          for (auto& [state, n] : s.by_state)
            o << "sandboxd_sandboxes{state=\"" << state << "\"} " << n << "\n";
          o << "# HELP sandboxd_create_seconds Time from a create request to the sandbox running.\n"
               "# TYPE sandboxd_create_seconds histogram\n";
          for (size_t i = 0; i < s.latency_bounds_s.size(); ++i)
            o << "sandboxd_create_seconds_bucket{le=\"" << s.latency_bounds_s[i] << "\"} "
              << s.latency_counts[i] << "\n";
          o << "sandboxd_create_seconds_bucket{le=\"+Inf\"} " << s.creates << "\n"
            << "sandboxd_create_seconds_sum " << s.latency_sum_s << "\n"
            << "sandboxd_create_seconds_count " << s.creates << "\n";
          o << "# HELP sandboxd_create_failures_total Creates that failed.\n"
               "# TYPE sandboxd_create_failures_total counter\n"
            << "sandboxd_create_failures_total " << s.create_failures << "\n";
          o << "# HELP sandboxd_warm_sandboxes Sandboxes booted ahead and ready for a create, per template.\n"
               "# TYPE sandboxd_warm_sandboxes gauge\n";
          for (auto& [name, n] : s.warm)
            o << "sandboxd_warm_sandboxes{template=\"" << name << "\"} " << n << "\n";
          o << "# HELP sandboxd_ready_disks Sandbox disks made ahead for the next creates.\n"
               "# TYPE sandboxd_ready_disks gauge\n"
               "sandboxd_ready_disks " << s.ready_disks << "\n";
          auto last = db->last_seq();
          o << "# HELP sandboxd_event_log_seq The newest event's sequence number.\n"
               "# TYPE sandboxd_event_log_seq counter\n"
            << "sandboxd_event_log_seq " << last << "\n"
            << "# HELP sandboxd_event_log_bytes Estimated bytes of the event log and its indexes.\n"
               "# TYPE sandboxd_event_log_bytes gauge\n"
            << "sandboxd_event_log_bytes " << db->event_log_bytes() << "\n";
          // Unreadable webhooks fail the scrape: a backlog of 0 would read as none.
          auto stored = db->webhooks();
          if (!stored)
            return out->send_error(stored.error());
          uint64_t backlog = 0, hooks = 0;
          for (auto& w : *stored) {
            ++hooks;
            // An unreadable cursor counts as no backlog rather than failing the scrape.
            auto read = db->webhook_cursor(w.id);
            uint64_t cursor = read ? *read : last;
            backlog += last > cursor ? last - cursor : 0;
          }
          o << "# HELP sandboxd_webhooks Configured webhooks.\n"
               "# TYPE sandboxd_webhooks gauge\n"
            << "sandboxd_webhooks " << hooks << "\n"
            << "# HELP sandboxd_webhook_backlog_events Log events not yet handled by a webhook, summed over webhooks.\n"
               "# TYPE sandboxd_webhook_backlog_events gauge\n"
            << "sandboxd_webhook_backlog_events " << backlog << "\n";
          out->send_text(200, o.str(), "text/plain; version=0.0.4");
        },
        reply_error_to(out));
  });
}

} // namespace sandboxd::http
