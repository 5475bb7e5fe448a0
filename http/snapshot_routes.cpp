// Snapshots and fork (E2B's shapes): a sandbox's files frozen into a layer
// that new sandboxes start from. Filesystem only: Debian's crun is built
// without CRIU, so a sandbox made from a snapshot boots fresh on its files.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/ids.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/e2b_json.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

json snapshot_json(const snapshot_info& s) {
  auto names = json::array();
  if (!s.name.empty())
    names.push_back(public_id(s));
  return {{"snapshotID", public_id(s)}, {"names", names}};
}

// Names are single path-free words: they become template references.
bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 128)
    return false;
  for (unsigned char c : n)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

} // namespace

// POST /sandboxes/:id/snapshots {name?} → 201 {snapshotID, names}.
void create_snapshot(api_context& ctx, request& req) {
  auto body = parse_object(req.body, true);
  if (!body)
    return req.out->send_error(body.error());
  auto name = string_field(*body, "name", std::string{});
  if (!name)
    return req.out->send_error(name.error());
  if (!name->empty() && !valid_name(*name))
    return req.out->send_error(bad_request(
      "name may hold letters, digits, '-', '_' and '.', at most 128 of them"));
  auto out = req.out;
  auto n = *name;
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::snapshot::value, n, false)
      .then([=](snapshot_info& s) { out->send_json(201, snapshot_json(s)); },
            reply_error_to(out));
  });
}

// GET /snapshots?sandboxID&name&limit&nextToken: newest first.
void list_snapshots(api_context& ctx, request& req) {
  auto limit = int_param(req.query_param("limit"), "limit", 100, 1, 100);
  if (!limit)
    return req.out->send_error(limit.error());
  auto sandbox = req.query_param("sandboxID").value_or("");
  auto name = req.query_param("name").value_or("");
  std::optional<std::string> token;
  if (auto t = req.query_param("nextToken"); t && !t->empty())
    token = *t;
  bool more = false;
  auto found = ctx.db->snapshots(
    req.org, static_cast<size_t>(*limit),
    [&](const snapshot_info& s) {
      return !s.hidden && (sandbox.empty() || s.sandbox_id == sandbox)
             && (name.empty() || refers_to(name, s));
    },
    token, &more);
  if (!found)
    return req.out->send_error(found.error());
  auto arr = json::array();
  for (auto& s : *found)
    arr.push_back(snapshot_json(s));
  std::map<std::string, std::string> headers;
  if (more && !found->empty())
    headers["X-Next-Token"] = store::snapshot_cursor(found->back());
  req.out->send_json_with_headers(200, arr, headers);
}

// POST /sandboxes/:id/fork {timeout=15, count=1} → 201 [{sandbox} | {error}]:
// one snapshot, then `count` sandboxes from it, each succeeding or failing
// on its own. The forks keep the sandbox's metadata and variables.
void fork_sandbox(api_context& ctx, request& req) {
  auto body = parse_object(req.body, true);
  if (!body)
    return req.out->send_error(body.error());
  auto timeout = int_field(*body, "timeout", 15, 0, 86400);
  if (!timeout)
    return req.out->send_error(timeout.error());
  auto count = int_field(*body, "count", 1, 1, 100);
  if (!count)
    return req.out->send_error(count.error());
  auto out = req.out;
  auto keys = json_keys(ctx);
  auto reg = ctx.registry;
  auto org = req.org;
  auto t = *timeout;
  auto n = static_cast<size_t>(*count);
  with_sandbox(ctx, req, [=](caf::event_based_actor* self, sandbox_actor sb) {
    self->request(sb, caf::infinite, atom::get::value).then([=](sandbox_record& src) {
      self->request(sb, caf::infinite, atom::snapshot::value, std::string{}, true)
        .then(
          [=](snapshot_info& snap) {
            auto results = std::make_shared<std::vector<json>>(n);
            auto left = std::make_shared<size_t>(n);
            for (size_t i = 0; i < n; ++i) {
              create_spec spec;
              spec.org_id = org;
              spec.template_id = snap.id;
              spec.timeout_s = t;
              spec.metadata = src.metadata;
              spec.env_vars = src.env_vars;
              auto done = [=](json item) {
                (*results)[i] = std::move(item);
                if (--*left != 0)
                  return;
                out->send_json(201, json(*results));
                // No fork started: nothing will end to let its snapshot go.
                if (std::none_of(results->begin(), results->end(),
                                 [](const json& r) { return r.contains("sandbox"); }))
                  self->request(reg, caf::infinite, atom::remove::value, org, snap.id)
                    .then([](bool) {},
                          [id = snap.id](caf::error& e) {
                            spdlog::warn("fork snapshot {} stays: {}", id, from_error(e).message);
                          });
              };
              self->request(reg, caf::infinite, atom::create::value, spec)
                .then([=](sandbox_record& r) { done({{"sandbox", sandbox_json(r, keys)}}); },
                      [=](caf::error& e) {
                        auto f = from_error(e);
                        done({{"error", {{"code", f.status}, {"message", f.message}}}});
                      });
            }
          },
          reply_error_to(out));
    },
    reply_error_to(out));
  });
}

} // namespace sandboxd::http
