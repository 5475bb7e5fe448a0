#include "core/snapshot.hpp"

namespace sandboxd {

namespace {

constexpr const char* default_tag = ":default";

std::string without_tag(const std::string& ref) {
  auto n = std::string{default_tag}.size();
  if (ref.size() > n && ref.compare(ref.size() - n, n, default_tag) == 0)
    return ref.substr(0, ref.size() - n);
  return ref;
}

} // namespace

std::string public_id(const snapshot_info& s) {
  return (s.name.empty() ? s.id : s.name) + default_tag;
}

bool refers_to(const std::string& ref, const snapshot_info& s) {
  auto bare = without_tag(ref);
  return bare == s.id || (!s.name.empty() && bare == s.name);
}

nlohmann::json to_storage_json(const snapshot_info& s) {
  return {{"id", s.id},         {"org", s.org_id},     {"name", s.name},
          {"sandbox", s.sandbox_id}, {"template", s.template_id}, {"layers", s.layers},
          {"created", s.created_ms}, {"hidden", s.hidden}, {"node", s.node}};
}

std::optional<snapshot_info> snapshot_from_storage_json(const nlohmann::json& j) {
  try {
    snapshot_info s;
    s.id = j.at("id");
    s.org_id = j.at("org");
    s.name = j.value("name", "");
    s.sandbox_id = j.value("sandbox", "");
    s.template_id = j.at("template");
    s.layers = j.at("layers").get<std::vector<std::string>>();
    s.created_ms = j.value("created", int64_t{0});
    s.hidden = j.value("hidden", false);
    s.node = j.value("node", ""); // absent before the cluster: the control node
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

} // namespace sandboxd
