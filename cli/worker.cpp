// sandboxd worker: a node that runs sandboxes for a control node.
//   sandboxd worker --join HOST:PORT --cluster-secret-file FILE [--name NAME] ...
//   sandboxd worker list [--data-dir DIR] [--json]      (asks the control node)
//   sandboxd worker drain NAME [--undo] [--data-dir DIR]
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/cluster_gate.hpp"
#include "actors/executor.hpp"
#include "actors/worker.hpp"
#include "cli/cluster.hpp"
#include "cli/commands.hpp"
#include "cli/log_format.hpp"
#include "cli/defaults.hpp"
#include "cli/options.hpp"
#include "http/admin_channel.hpp"
#include "http/server.hpp"
#include "runtime/containers.hpp"
#include "runtime/templates.hpp"
#include "actors/tunnel.hpp"

namespace fs = std::filesystem;

namespace sandboxd::cli {

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "sandboxd worker: %s\n", what.c_str());
  return 1;
}

// Between attempts to join (the control node may be restarting).
constexpr auto rejoin_pause = std::chrono::seconds(2);

std::string default_node_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string name;
  for (char c : std::string{host}) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (valid_node_name(std::string(1, c)) || c == '-')
      name.push_back(c);
  }
  return valid_node_name(name) ? name : "worker";
}

std::string table(const nlohmann::json& nodes) {
  std::string out = "NODE                 STATE        SANDBOXES  ALLOCATED  MEMORY     CPUS  TEMPLATES\n";
  char line[512];
  for (auto& n : nodes) {
    std::string state = n["connected"].get<bool>() ? (n["draining"].get<bool>() ? "draining" : "ready")
                                                   : "lost";
    std::string tpls;
    for (auto& t : n["templates"])
      tpls += (tpls.empty() ? "" : ",") + t.get<std::string>();
    std::snprintf(line, sizeof line, "%-20s %-12s %9d %7lld MiB %6lld MiB %4d  %s\n",
                  (n["node"].get<std::string>() + (n["local"].get<bool>() ? "*" : "")).c_str(),
                  state.c_str(), n["sandboxes"].get<int>(),
                  static_cast<long long>(n["allocatedMB"].get<int64_t>()),
                  static_cast<long long>(n["memoryMB"].get<int64_t>()), n["cpus"].get<int>(),
                  tpls.c_str());
    out += line;
  }
  return out + "(* the control node itself)\n";
}

// One request to the control node's admin socket; `table`: the answer is
// the node list, shown as a table.
int ask_control(const options& opts, const std::string& line, bool table_wanted) {
  auto dir = fs::absolute(opts.get("data-dir", "./data")).lexically_normal().string();
  auto r = admin_request(dir + "/admin.sock", line);
  if (!r)
    return fail(r.error().message + " (is the control node serving " + dir + "?)");
  auto body = *r;
  while (!body.empty() && body.back() == '\n')
    body.pop_back();
  if (!table_wanted) {
    std::printf("%s\n", body.c_str());
    return 0;
  }
  auto nodes = nlohmann::json::parse(body, nullptr, false);
  if (nodes.is_discarded())
    return fail("the control node's answer is not JSON");
  std::fputs(table(nodes).c_str(), stdout);
  return 0;
}

int join(const options& opts) {
  auto hp = http::parse_listen(opts.get("join", ""));
  if (!hp)
    return fail("--join: " + hp.error().message);
  auto secret_file = opts.get("cluster-secret-file", "");
  if (secret_file.empty())
    return fail("--cluster-secret-file is required (the control node's secret)");
  auto name = opts.get("name", default_node_name());
  if (!valid_node_name(name))
    return fail("--name must be 1 to 63 of a-z, 0-9 and '-'");
  auto dir = fs::absolute(opts.get("data-dir", "./worker-data")).lexically_normal().string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return fail("cannot create " + dir + ": " + ec.message());
  auto catalog = template_catalog::load(opts.get("templates", default_templates_file()),
                                        opts.get("template-cache", default_template_cache));
  if (!catalog)
    return fail(catalog.error().message);
  auto templates = std::make_shared<const template_catalog>(std::move(*catalog));
  auto runtime = std::make_shared<container_runtime>(
    opts.get("oci-runtime", "crun"), dir, opts.get("agent", self_dir() + "/sandboxd-agent"));
  if (auto st = runtime->check_host(); !st)
    return fail(st.error().message);
  signal(SIGPIPE, SIG_IGN);

  caf::actor_system_config cfg;
  add_message_types(cfg);
  if (auto s = configure_cluster(cfg, secret_file, dir + "/cluster"); !s)
    return fail(s.error().message);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  caf::actor_system sys{cfg};
  blocking_executors executors{sys};
  auto worker = spawn_worker(sys, runtime, templates);
  auto socket_of = [runtime](const std::string& id) -> result<std::string> {
    return runtime->agent_socket(id);
  };
  // Each join brings a tunnel end of its own: the control node's front hangs
  // up on a back it once lost, and this back on a front it lost.
  std::optional<tunnel_back_actor> back;
  for (bool first = true;; first = false) {
    if (!first)
      std::this_thread::sleep_for(rejoin_pause);
    auto gate = caf::openssl::remote_actor<cluster_gate_actor>(sys, hp->first, hp->second);
    if (!gate) {
      spdlog::error("cannot join {}:{}: {} (a node without the control node's cluster secret "
                    "is refused at the TLS handshake)",
                    hp->first, hp->second, sys.render(gate.error()));
      continue;
    }
    if (back)
      caf::anon_send_exit(*back, caf::exit_reason::user_shutdown);
    back.reset();
    auto fresh = spawn_tunnel_back(sys, socket_of);
    if (!fresh) {
      spdlog::error("no tunnel end: {}", fresh.error().message);
      continue;
    }
    back = *fresh;
    caf::scoped_actor self{sys};
    bool joined = false;
    self->request(*gate, std::chrono::seconds(60), atom::join::value,
                  measure_node(name, *runtime, *templates), worker, *back)
      .receive([&](bool) { joined = true; },
               [&](caf::error& e) {
                 spdlog::error("the control node refused node {}: {}", name,
                               from_error(e).message);
               });
    if (!joined)
      continue;
    std::printf("sandboxd worker %s joined %s:%u\n", name.c_str(), hp->first.c_str(),
                static_cast<unsigned>(hp->second));
    std::fflush(stdout);
    self->monitor(*gate);
    bool down = false;
    self->receive_while([&] { return !down; })([&](caf::down_msg&) { down = true; });
    spdlog::error("lost the control node: joining again");
  }
}

} // namespace

int worker(int argc, char** argv) {
  std::string sub = argc > 2 ? argv[2] : "";
  if (sub == "list" || sub == "drain") {
    // --json and --undo take no value: set aside before the flags are parsed.
    bool json = false, undo = false;
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
      std::string a = argv[i];
      json |= a == "--json";
      undo |= a == "--undo";
      if (a != "--json" && a != "--undo")
        args.push_back(argv[i]);
    }
    auto n = static_cast<int>(args.size());
    auto opts = parse(n, args.data(), sub == "drain" ? 4 : 3, {"data-dir"});
    if (!opts)
      return fail(opts.error().message);
    if (sub == "list")
      return ask_control(*opts, "cluster-nodes", !json);
    if (n < 4 || !valid_node_name(args[3]))
      return fail("usage: sandboxd worker drain NAME [--undo] [--data-dir DIR]");
    return ask_control(*opts, std::string(undo ? "cluster-undrain " : "cluster-drain ") + args[3],
                       false);
  }
  auto opts = parse(argc, argv, 2,
                    {"join", "cluster-secret-file", "name", "data-dir", "oci-runtime", "templates",
                     "template-cache", "agent", "log-format"});
  if (!opts)
    return fail(opts.error().message);
  if (auto st = set_log_format(opts->get("log-format", "text")); !st)
    return fail(st.error().message);
  return join(*opts);
}

} // namespace sandboxd::cli
