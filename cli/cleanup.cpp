// `sandboxd cleanup`: removes every sandbox of a data dir whose server is no
// longer running — containers, network (veth, nftables chain), mounts,
// cgroups and files — the same way a kill does. For tests and uninstalls;
// the event log is left alone.
#include <cstdio>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "http/admin_channel.hpp"
#include "runtime/containers.hpp"
#include "runtime/volume_store.hpp"

namespace sandboxd::cli {

int cleanup(int argc, char** argv) {
  auto opts = parse(argc, argv, 2, {"data-dir", "oci-runtime"});
  if (!opts || !opts->positional.empty()) {
    std::fprintf(stderr, "usage: sandboxd cleanup [--data-dir DIR] [--oci-runtime crun]\n");
    return 2;
  }
  auto dir = std::filesystem::absolute(opts->get("data-dir", "./data")).lexically_normal().string();
  if (!dir.empty() && dir.back() == '/')
    dir.pop_back();
  // A live server owns these sandboxes: it answers on its admin socket.
  if (auto r = admin_request(dir + "/admin.sock", "ping"); r || r.error().status != 503) {
    std::fprintf(stderr, "sandboxd cleanup: a server is serving %s; stop it first\n", dir.c_str());
    return 1;
  }
  container_runtime rt{opts->get("oci-runtime", "crun"), dir, self_dir() + "/sandboxd-agent"};
  auto ids = rt.list();
  if (!ids) {
    std::fprintf(stderr, "sandboxd cleanup: %s\n", ids.error().message.c_str());
    return 1;
  }
  int failed = 0;
  for (auto& id : *ids) {
    if (auto st = rt.destroy(id); !st) {
      std::fprintf(stderr, "sandboxd cleanup: %s: %s\n", id.c_str(), st.error().message.c_str());
      ++failed;
    }
  }
  rt.remove_roots_dir();
  volume_store::unmount_all(dir); // a crashed server's; their files stay
  std::printf("removed %zu sandboxes\n", ids->size() - static_cast<size_t>(failed));
  return failed == 0 ? 0 : 1;
}

} // namespace sandboxd::cli
