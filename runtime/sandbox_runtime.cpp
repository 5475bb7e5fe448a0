#include "runtime/sandbox_runtime.hpp"

#include <filesystem>

namespace sandboxd {

status sandbox_runtime::remove_layer(const std::string& snapshot_id, const std::string&) {
  auto dir = layer_dir(snapshot_id);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec)
    return internal_error("cannot remove snapshot layer " + dir + ": " + ec.message());
  return success();
}

} // namespace sandboxd
