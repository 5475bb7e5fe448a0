#include "actors/interfaces.hpp"

namespace sandboxd {

namespace {
const caf::atom_value category = caf::atom("sandboxd");
} // namespace

caf::error to_error(const failure& f) {
  return caf::error{1, category, caf::make_message(f.status, f.message)};
}

failure from_error(const caf::error& e) {
  if (e.category() == category) {
    auto& ctx = e.context();
    if (ctx.match_elements<int, std::string>())
      return {ctx.get_as<int>(0), ctx.get_as<std::string>(1)};
  }
  if (e == caf::sec::request_timeout)
    return {504, "timed out"};
  // Only sandbox actors quit while serving (once killed): a request that
  // reached one just before it was gone asked for a sandbox that no longer is.
  if (e == caf::sec::request_receiver_down)
    return {404, "sandbox not found"};
  return {500, "internal error: " + caf::to_string(e)};
}

} // namespace sandboxd
