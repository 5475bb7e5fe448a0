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

} // namespace sandboxd
