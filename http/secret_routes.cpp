// An org's secrets (E2B's Secret.create, update, getInfo, list, exists,
// destroy). Values are write-only: sealed on the way in (core/secret.hpp),
// never in an answer, a log line or an event. Writes are serialized here
// (a name is unique in its org); each is one synced store write.
#include <mutex>

#include "core/clock.hpp"
#include "core/secret.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

std::mutex& writes() {
  static std::mutex m;
  return m;
}

// The ref of a route (an id or a name), as the store compares it.
std::string ref_of(const request& req) {
  auto ref = req.params.at("id");
  if (valid_secret_id(ref))
    return ref;
  auto name = canonical_secret_name(ref);
  return name ? *name : ref;
}

// The value and metadata a create or update carries.
struct secret_input {
  std::string value;
  std::map<std::string, std::string> metadata;
  bool has_metadata = false;
};

result<secret_input> parse_input(const nlohmann::json& body) {
  auto value = parse_secret_value(body);
  if (!value)
    return value.error();
  auto metadata = parse_secret_metadata(body);
  if (!metadata)
    return metadata.error();
  return secret_input{std::move(*value), std::move(*metadata),
                      body.contains("metadata") && !body["metadata"].is_null()};
}

} // namespace

// POST /secrets {name, value, metadata?} → 201 E2B's Secret.
void create_secret(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto raw_name = body->value("name", nlohmann::json{});
  if (!raw_name.is_string())
    return req.out->send_error(bad_request("name must be a string"));
  auto name = canonical_secret_name(raw_name.get<std::string>());
  if (!name)
    return req.out->send_error(name.error());
  auto in = parse_input(*body);
  if (!in)
    return req.out->send_error(in.error());
  std::lock_guard<std::mutex> guard{writes()};
  auto have = ctx.db->secrets(req.org);
  if (!have)
    return req.out->send_error(have.error());
  for (auto& s : *have)
    if (s.name == *name)
      return req.out->send_error(conflict("a secret named " + *name + " already exists"));
  if (have->size() >= max_secrets_per_org)
    return req.out->send_error({429, "secret limit reached (" + std::to_string(max_secrets_per_org)
                                       + " secrets per org)"});
  secret_record s;
  s.id = new_secret_id();
  s.org_id = req.org;
  s.name = *name;
  s.metadata = std::move(in->metadata);
  s.created_ms = s.updated_ms = now_ms();
  s.current_version = 1;
  s.versions.push_back(seal_secret(secrets_key(ctx.db->secret()), s, 1, in->value, s.created_ms));
  if (auto st = ctx.db->put_secret(s); !st)
    return req.out->send_error(st.error());
  req.out->send_json(201, to_json(s));
}

// GET /secrets?limit&nextToken → 200 [E2B's Secret], oldest first;
// X-Next-Token (the last one's id) when more follow.
void list_secrets(api_context& ctx, request& req) {
  auto limit = int_param(req.query_param("limit"), "limit", 100, 1, 100);
  if (!limit)
    return req.out->send_error(limit.error());
  auto all = ctx.db->secrets(req.org);
  if (!all)
    return req.out->send_error(all.error());
  size_t start = 0;
  if (auto token = req.query_param("nextToken"); token && !token->empty()) {
    if (!valid_secret_id(*token))
      return req.out->send_error(bad_request("nextToken is not one this server issued"));
    // After the named one; a token whose secret is gone resumes at the
    // first secret created after it would have been (by id order within
    // a millisecond) — never an error for a caller paging through deletes.
    while (start < all->size() && (*all)[start].id != *token)
      ++start;
    start = start < all->size() ? start + 1 : all->size();
  }
  auto arr = nlohmann::json::array();
  size_t end = std::min(all->size(), start + static_cast<size_t>(*limit));
  for (size_t i = start; i < end; ++i)
    arr.push_back(to_json((*all)[i]));
  std::map<std::string, std::string> headers;
  if (end < all->size() && end > start)
    headers["X-Next-Token"] = (*all)[end - 1].id;
  req.out->send_json_with_headers(200, arr, headers);
}

// GET /secrets/:id (id or name) → 200 E2B's Secret.
void get_secret(api_context& ctx, request& req) {
  auto s = ctx.db->find_secret(req.org, ref_of(req));
  if (!s)
    return req.out->send_error(s.error());
  if (!*s)
    return req.out->send_error(not_found("secret not found"));
  req.out->send_json(200, to_json(**s));
}

// POST /secrets/:id {value, metadata?} → 200: the value as a new version.
void update_secret(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto in = parse_input(*body);
  if (!in)
    return req.out->send_error(in.error());
  std::lock_guard<std::mutex> guard{writes()};
  auto found = ctx.db->find_secret(req.org, ref_of(req));
  if (!found)
    return req.out->send_error(found.error());
  if (!*found)
    return req.out->send_error(not_found("secret not found"));
  auto s = std::move(**found);
  s.updated_ms = now_ms();
  s.current_version += 1;
  s.versions.push_back(
    seal_secret(secrets_key(ctx.db->secret()), s, s.current_version, in->value, s.updated_ms));
  // Older versions beyond the few kept are dropped (sealed bytes only).
  while (s.versions.size() > max_secret_versions)
    s.versions.erase(s.versions.begin());
  if (in->has_metadata)
    s.metadata = std::move(in->metadata);
  if (auto st = ctx.db->put_secret(s); !st)
    return req.out->send_error(st.error());
  req.out->send_json(200, to_json(s));
}

// DELETE /secrets/:id → 204; every version goes with it.
void delete_secret(api_context& ctx, request& req) {
  std::lock_guard<std::mutex> guard{writes()};
  auto found = ctx.db->find_secret(req.org, ref_of(req));
  if (!found)
    return req.out->send_error(found.error());
  if (!*found)
    return req.out->send_error(not_found("secret not found"));
  if (auto st = ctx.db->delete_secret((*found)->id); !st)
    return req.out->send_error(st.error());
  req.out->send_empty(204);
}

} // namespace sandboxd::http
