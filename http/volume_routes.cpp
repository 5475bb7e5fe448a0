// An org's volumes (E2B's Volume.create, list, getInfo, destroy). Creating
// and deleting go through the registry (it serializes them with the creates
// that mount volumes); reading is the store's. Their files are reached
// through the volume-content API on the envd listener, with the token these
// answers carry.
#include "core/volume.hpp"
#include "http/body.hpp"
#include "http/context.hpp"
#include "http/routes.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

// POST /volumes {name} → 201 E2B's VolumeAndToken.
void create_volume(api_context& ctx, request& req) {
  auto body = parse_object(req.body);
  if (!body)
    return req.out->send_error(body.error());
  auto name = body->value("name", nlohmann::json{});
  if (!name.is_string() || !valid_volume_name(name.get<std::string>()))
    return req.out->send_error(
      bad_request("name must be 1-63 of a-z, A-Z, 0-9, _ and -, not starting with -"));
  auto out = req.out;
  auto reg = ctx.registry;
  auto org = req.org;
  auto secret = ctx.db->secret();
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::create::value, atom::volume::value, org,
                  name.get<std::string>())
      .then([=](volume& v) { out->send_json(201, to_json_with_token(v, secret)); },
            reply_error_to(out));
  });
}

// GET /volumes → 200 [E2B's Volume], oldest first.
void list_volumes(api_context& ctx, request& req) {
  auto vols = ctx.db->volumes(req.org);
  if (!vols)
    return req.out->send_error(vols.error());
  auto arr = nlohmann::json::array();
  for (auto& v : *vols)
    arr.push_back(to_json(v));
  req.out->send_json(200, arr);
}

// GET /volumes/:id → 200 E2B's VolumeAndToken; 404 for another org's.
void get_volume(api_context& ctx, request& req) {
  auto& id = req.params.at("id");
  if (!valid_volume_id(id))
    return req.out->send_error(not_found("volume " + id.substr(0, 64) + " not found"));
  auto v = ctx.db->find_volume(id);
  if (!v)
    return req.out->send_error(v.error());
  if (!*v || (*v)->org_id != req.org)
    return req.out->send_error(not_found("volume " + id + " not found"));
  req.out->send_json(200, to_json_with_token(**v, ctx.db->secret()));
}

// DELETE /volumes/:id → 204; 409 while a sandbox mounts it.
void delete_volume(api_context& ctx, request& req) {
  auto id = req.params.at("id");
  if (!valid_volume_id(id))
    return req.out->send_error(not_found("volume " + id.substr(0, 64) + " not found"));
  auto out = req.out;
  auto reg = ctx.registry;
  auto org = req.org;
  ctx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(reg, caf::infinite, atom::remove::value, atom::volume::value, org, id)
      .then([=](bool) { out->send_empty(204); }, reply_error_to(out));
  });
}

} // namespace sandboxd::http
