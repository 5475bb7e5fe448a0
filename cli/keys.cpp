// `sandboxd keys create`: through the running server's admin channel when
// there is one (it holds the database), else straight into the store.
#include <cstdio>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "http/admin_channel.hpp"
#include "storage/store.hpp"

namespace sandboxd::cli {

int keys(int argc, char** argv) {
  auto opts = parse(argc, argv, 2, {"data-dir", "org"});
  if (!opts) {
    std::fprintf(stderr, "sandboxd keys: %s\n", opts.error().message.c_str());
    return 2;
  }
  if (opts->positional != std::vector<std::string>{"create"}) {
    std::fprintf(stderr, "usage: sandboxd keys create --org NAME [--data-dir DIR]\n");
    return 2;
  }
  auto org = opts->get("org", "");
  if (org.empty() || org.find_first_of(" \n\r\t") != std::string::npos) {
    std::fprintf(stderr, "sandboxd keys create: --org NAME is required (no spaces)\n");
    return 2;
  }
  auto dir = opts->get("data-dir", "./data");
  auto via_server = admin_request(dir + "/admin.sock", "keys-create " + org);
  if (via_server) {
    std::printf("%s\n", via_server->c_str());
    return 0;
  }
  if (via_server.error().status != 503) {
    std::fprintf(stderr, "sandboxd keys create: %s\n",
                 via_server.error().message.c_str());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  auto db = store::open(dir + "/db");
  if (!db) {
    std::fprintf(stderr, "sandboxd keys create: %s\n", db.error().message.c_str());
    return 1;
  }
  auto key = (*db)->create_key(org);
  if (!key) {
    std::fprintf(stderr, "sandboxd keys create: %s\n", key.error().message.c_str());
    return 1;
  }
  std::printf("%s\n", key->c_str());
  return 0;
}

} // namespace sandboxd::cli
