// E2B's sandbox logs (v1 and v2) over the same per-sandbox store as the e2a
// logs: lifecycle lines ("system"), agent and process output.
#include "core/clock.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

const std::vector<std::string> levels = {"debug", "info", "warn", "error"};

int level_rank(const std::string& level) {
  for (size_t i = 0; i < levels.size(); ++i)
    if (levels[i] == level)
      return static_cast<int>(i);
  return -1;
}

// Output on stderr is an error line; the rest is information.
std::string level_of(const store::log_line& l) {
  return l.stream == "stderr" ? "error" : "info";
}

json entry_json(const store::log_line& l) {
  return {{"timestamp", to_rfc3339(l.timestamp_ms)},
          {"level", level_of(l)},
          {"message", l.line},
          {"fields", {{"stream", l.stream}}}};
}

result<std::optional<int64_t>> millis_param(const request& req, const std::string& name) {
  auto raw = req.query_param(name);
  if (!raw || raw->empty())
    return std::optional<int64_t>{};
  auto v = int_param(raw, name, 0, 0, int64_t{1} << 50);
  if (!v)
    return v.error();
  return std::optional<int64_t>{*v};
}

} // namespace

// GET /sandboxes/:id/logs?start&limit (deprecated by E2B, still served):
// from `start` (ms) on, oldest first, as plain lines and as entries.
void sandbox_logs(api_context& ctx, request& req) {
  auto start = millis_param(req, "start");
  if (!start)
    return req.out->send_error(start.error());
  auto limit = int_param(req.query_param("limit"), "limit", 1000, 1, 10000);
  if (!limit)
    return req.out->send_error(limit.error());
  auto out = req.out;
  auto db = ctx.db;
  auto from = *start;
  auto n = static_cast<size_t>(*limit);
  with_record(ctx, req, [=](const sandbox_record& r) {
    auto found = db->logs_page(r.id, from, true, n, [](auto&) { return true; });
    if (!found)
      return out->send_error(found.error());
    auto lines = json::array(), entries = json::array();
    for (auto& l : *found) {
      lines.push_back({{"timestamp", to_rfc3339(l.timestamp_ms)}, {"line", l.line}});
      entries.push_back(entry_json(l));
    }
    out->send_json(200, {{"logs", lines}, {"logEntries", entries}});
  });
}

// GET /v2/sandboxes/:id/logs?cursor&limit&direction&level&search.
void sandbox_logs_v2(api_context& ctx, request& req) {
  auto cursor = millis_param(req, "cursor");
  if (!cursor)
    return req.out->send_error(cursor.error());
  auto limit = int_param(req.query_param("limit"), "limit", 1000, 1, 10000);
  if (!limit)
    return req.out->send_error(limit.error());
  auto direction = req.query_param("direction").value_or("forward");
  if (direction != "forward" && direction != "backward")
    return req.out->send_error(bad_request("direction must be forward or backward"));
  auto level = req.query_param("level").value_or("");
  int min_rank = level.empty() ? 0 : level_rank(level);
  if (min_rank < 0)
    return req.out->send_error(bad_request("level must be one of debug, info, warn, error"));
  auto search = req.query_param("search").value_or("");
  auto out = req.out;
  auto db = ctx.db;
  auto from = *cursor;
  auto n = static_cast<size_t>(*limit);
  bool forward = direction == "forward";
  with_record(ctx, req, [=](const sandbox_record& r) {
    auto keep = [&](const store::log_line& l) {
      return level_rank(level_of(l)) >= min_rank
             && (search.empty() || l.line.find(search) != std::string::npos);
    };
    auto found = db->logs_page(r.id, from, forward, n, keep);
    if (!found)
      return out->send_error(found.error());
    auto entries = json::array();
    for (auto& l : *found)
      entries.push_back(entry_json(l));
    out->send_json(200, {{"logs", entries}});
  });
}

} // namespace sandboxd::http
