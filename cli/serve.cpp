// `sandboxd serve`: open the store, replay the log into actors, reconcile
// with the runtime, then serve HTTP until SIGINT/SIGTERM. Sandboxes outlive
// the server: stopping it leaves them running for the next start to adopt.
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <caf/all.hpp>
#include <caf/openssl/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/cluster_gate.hpp"
#include "actors/cluster_runtime.hpp"
#include "actors/executor.hpp"
#include "actors/worker.hpp"
#include "actors/event_log.hpp"
#include "actors/registry.hpp"
#include "actors/template_builder.hpp"
#include "cli/cluster.hpp"
#include "cli/commands.hpp"
#include "cli/log_format.hpp"
#include "cli/defaults.hpp"
#include "cli/options.hpp"
#include "http/admin_channel.hpp"
#include "http/context.hpp"
#include "http/e2b_json.hpp"
#include "http/envd.hpp"
#include "http/server.hpp"
#include "core/crypto.hpp"
#include "runtime/containers.hpp"
#include "runtime/egress_ca.hpp"
#include "runtime/egress_proxy.hpp"
#include "runtime/pem_files.hpp"
#include "runtime/tls_common.hpp"
#include "core/secret.hpp"
#include "actors/tunnel.hpp"
#include "runtime/agent_catalog.hpp"
#include "runtime/templates.hpp"
#include "storage/store.hpp"
#include "webhooks/delivery.hpp"
#include "webhooks/http_post.hpp"

namespace fs = std::filesystem;

namespace sandboxd::cli {

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "sandboxd serve: %s\n", what.c_str());
  return 1;
}

// Once actors run, returning would wait for them forever: leave at once
// (every event is already synced).
int die(const std::string& what) {
  fail(what);
  std::fflush(stderr);
  std::_Exit(1);
}

// First start of an empty data dir: org "default" and a key in DIR/api-key.
result<std::string> bootstrap_key(store& db, const std::string& dir) {
  auto path = dir + "/api-key";
  auto any = db.has_keys();
  if (!any)
    return any.error();
  if (*any) {
    std::ifstream in{path};
    std::string key;
    in >> key;
    return key;
  }
  auto key = db.create_key("default");
  if (!key)
    return key.error();
  auto old = ::umask(0077);
  {
    std::ofstream out{path, std::ios::trunc};
    out << *key << "\n";
  }
  ::umask(old);
  ::chmod(path.c_str(), 0600);
  return key;
}

// Every connection is a descriptor (and on the envd listener a thread): the
// default soft limit of 1024 would refuse clients long before the listeners'
// own limits do.
// Returns the limit in force.
size_t raise_open_files_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0)
    return 1024;
  if (r.rlim_cur < r.rlim_max) {
    auto soft = r.rlim_cur;
    r.rlim_cur = r.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &r) != 0) {
      spdlog::warn("cannot raise the open files limit from {}: {}", soft, std::strerror(errno));
      r.rlim_cur = soft;
    }
  }
  return r.rlim_cur == RLIM_INFINITY ? size_t{1} << 20 : static_cast<size_t>(r.rlim_cur);
}

// Stopping must not wait on a listener that hangs (a worker stuck on a
// client): after this long, or on a second signal, leave anyway. Every event
// is already synced, so nothing is lost.
constexpr auto shutdown_grace = std::chrono::seconds(5);

void start_shutdown_watchdog(const sigset_t& sigs) {
  std::thread([sigs] {
    timespec wait{shutdown_grace.count(), 0};
    int sig = sigtimedwait(&sigs, nullptr, &wait);
    if (sig > 0)
      spdlog::warn("signal {} again: leaving without waiting for the listeners", sig);
    else
      spdlog::warn("the listeners did not stop within {} s: leaving anyway",
                   shutdown_grace.count());
    std::fflush(stdout);
    std::_Exit(0);
  }).detach();
}

// The tunnels' sockets stand in for remote agents' (a unix socket path
// holds at most 107 bytes, so not under a deep data dir).
std::string tunnel_dir(const std::string& data_dir) {
  return "/run/sandboxd/tunnels-" + sha256_hex(data_dir).substr(0, 12);
}

// The admin socket's cluster requests (sandboxd worker list | drain).
admin_handler cluster_admin(std::shared_ptr<cluster_runtime> cluster, std::shared_ptr<store> db) {
  return [cluster, db](const std::string& line) -> std::optional<result<std::string>> {
    auto arg = [&](const std::string& cmd) -> std::optional<std::string> {
      if (line.rfind(cmd + " ", 0) == 0)
        return line.substr(cmd.size() + 1);
      return std::nullopt;
    };
    bool nodes = line == "cluster-nodes";
    auto drain = arg("cluster-drain");
    auto undrain = arg("cluster-undrain");
    if (!nodes && !drain && !undrain)
      return std::nullopt;
    if (!cluster)
      return result<std::string>{failure{409, "this server is no control node (serve --cluster-listen)"}};
    if (nodes) {
      auto list = nlohmann::json::array();
      for (auto& n : cluster->nodes())
        list.push_back({{"node", n.capacity.node}, {"local", n.local},
                        {"connected", n.connected}, {"draining", n.draining},
                        {"sandboxes", n.sandboxes}, {"allocatedMB", n.allocated_mb},
                        {"memoryMB", n.capacity.memory_mb},
                        {"availableMB", n.capacity.available_mb}, {"cpus", n.capacity.cpus},
                        {"containers", n.capacity.containers},
                        {"templates", n.capacity.templates}});
      return result<std::string>{list.dump()};
    }
    auto name = drain ? *drain : *undrain;
    if (auto s = cluster->set_draining(name, static_cast<bool>(drain)); !s)
      return result<std::string>{s.error()};
    // Durable before the answer: a restart keeps the node drained.
    if (auto s = db->put_drained_nodes(cluster->draining()); !s)
      return result<std::string>{s.error()};
    return result<std::string>{std::string{drain ? "draining " : "placing again on "} + name};
  };
}

result<int> positive_int(const std::string& name, const std::string& v) {
  try {
    size_t used = 0;
    auto n = std::stoi(v, &used);
    if (used == v.size() && n > 0)
      return n;
  } catch (...) {
  }
  return bad_request("--" + name + " must be a positive integer");
}

} // namespace

namespace {

// One or two warm sandboxes of `base` cost ~1 MiB each and make the
// commonest create a claim.
constexpr const char* default_warm_pool = "base=2";
// Sandbox disks made ahead (runtime/sandbox_disk.hpp): each ~4 MB of page
// cache, a loop device and an idle ext4; enough for a burst of creates to
// start on ready disks while the next ones are made.
constexpr size_t ready_disks = 4;

// --warm-pool: "name=N,name=N" over catalogue templates, or "0" for none.
result<std::map<std::string, size_t>> parse_warm_pool(const std::string& text,
                                                      const template_catalog& catalog) {
  std::map<std::string, size_t> sizes;
  if (text == "0")
    return sizes;
  auto bad = [&](const std::string& why) {
    return bad_request("--warm-pool " + why
                            + " (expected name=N[,name=N...] over the catalogue's templates, "
                              "or 0 for none)");
  };
  size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos)
      end = text.size();
    auto item = text.substr(start, end - start);
    auto eq = item.find('=');
    if (eq == std::string::npos)
      return bad("has no size in '" + item + "'");
    auto name = item.substr(0, eq);
    auto tpl = catalog.find(name);
    if (!tpl || tpl->user)
      return bad("names an unknown template '" + name + "'");
    auto digits = item.substr(eq + 1);
    if (digits.empty() || digits.size() > 4
        || digits.find_first_not_of("0123456789") != std::string::npos || std::stoi(digits) > 1000)
      return bad("has a bad size in '" + item + "' (0 to 1000)");
    sizes[tpl->name] = static_cast<size_t>(std::stoi(digits));
    start = end + 1;
  }
  return sizes;
}

} // namespace

int serve(int argc, char** argv) {
  // glibc gives each thread that ever mallocs an arena of its own and keeps
  // it: with up to 80 executor threads coming and going, freed memory stayed
  // spread over dozens of arenas (RSS 31 -> 128 MiB after 1,000 creates and
  // kills). A few shared arenas return it.
  ::mallopt(M_ARENA_MAX, 4);
  auto opts = parse(argc, argv, 2,
                    {"data-dir", "api-listen", "envd-listen", "oci-runtime",
                     "templates", "template-cache", "max-sandboxes",
                     "http-threads", "agent", "allow-private-webhooks", "event-retention",
                     "compaction-interval", "max-sandboxes-per-org", "agents", "webhook-give-up",
                     "metrics-interval", "sandbox-disk-mb", "sandbox-inodes", "domain",
                     "warm-pool", "max-connections", "max-connections-per-client",
                     "max-snapshots-per-org", "cluster-listen", "cluster-secret-file",
                     "node-name", "rejoin-grace", "volume-size-mb", "max-volumes-per-org",
                     "egress-trust-file", "log-format", "tls-cert", "tls-key",
                     "build-templates", "console", "max-terminals"});
  if (!opts)
    return fail(opts.error().message);
  if (auto st = set_log_format(opts->get("log-format", "text")); !st)
    return fail(st.error().message);
  auto dir = fs::absolute(opts->get("data-dir", "./data")).lexically_normal().string();
  if (!dir.empty() && dir.back() == '/')
    dir.pop_back();
  auto api_listen = opts->get("api-listen", "127.0.0.1:3000");
  auto envd_listen = opts->get("envd-listen", "127.0.0.1:49983");
  for (auto& l : {api_listen, envd_listen})
    if (auto hp = http::parse_listen(l); !hp)
      return fail(hp.error().message);
  // HTTPS on both listeners, or on neither: the SDKs take one scheme.
  auto tls_cert = opts->get("tls-cert", "");
  auto tls_key = opts->get("tls-key", "");
  if (tls_cert.empty() != tls_key.empty())
    return fail("--tls-cert and --tls-key go together: a PEM certificate chain and its key");
  std::optional<http::tls_pem> tls; // envd's (libmicrohttpd: GnuTLS, from PEM text)
  ssl_ctx_ptr api_tls;              // the API's (the TLS front: OpenSSL)
  if (!tls_cert.empty()) {
    auto checked = server_tls_context(tls_cert, tls_key); // names what is wrong with them
    if (!checked)
      return fail(checked.error().message);
    api_tls = std::move(*checked);
    auto cert = read_pem_file(tls_cert);
    auto key = read_pem_file(tls_key);
    if (!cert || !key)
      return fail((cert ? key.error() : cert.error()).message);
    tls = http::tls_pem{std::move(*cert), std::move(*key)};
  }
  const std::string scheme = tls ? "https://" : "http://";
  auto max_sandboxes = positive_int("max-sandboxes", opts->get("max-sandboxes", "200"));
  auto http_threads = positive_int("http-threads", opts->get("http-threads", "4"));
  auto per_org = positive_int("max-sandboxes-per-org", opts->get("max-sandboxes-per-org", "200"));
  if (!per_org)
    return fail(per_org.error().message);
  auto snapshots_per_org = positive_int("max-snapshots-per-org",
                                        opts->get("max-snapshots-per-org", "100"));
  if (!snapshots_per_org)
    return fail(snapshots_per_org.error().message);
  if (!max_sandboxes)
    return fail(max_sandboxes.error().message);
  if (!http_threads)
    return fail(http_threads.error().message);
  auto max_conns = positive_int("max-connections", opts->get("max-connections", "4096"));
  if (!max_conns)
    return fail(max_conns.error().message);
  auto per_client = positive_int("max-connections-per-client",
                                 opts->get("max-connections-per-client", "2048"));
  if (!per_client)
    return fail(per_client.error().message);
  auto max_terminals = positive_int("max-terminals", opts->get("max-terminals", "256"));
  if (!max_terminals)
    return fail(max_terminals.error().message);
  auto volume_mb = positive_int("volume-size-mb", opts->get("volume-size-mb", "1024"));
  if (!volume_mb)
    return fail(volume_mb.error().message);
  auto volumes_per_org = positive_int("max-volumes-per-org", opts->get("max-volumes-per-org", "100"));
  if (!volumes_per_org)
    return fail(volumes_per_org.error().message);
  auto disk_mb = positive_int("sandbox-disk-mb", opts->get("sandbox-disk-mb", "10240"));
  if (!disk_mb)
    return fail(disk_mb.error().message);
  auto inodes = positive_int("sandbox-inodes", opts->get("sandbox-inodes", "262144"));
  if (!inodes || *inodes < 1024)
    return fail("--sandbox-inodes must be an integer of at least 1024");
  // Sandboxes' ports are named <port>-<id>.<domain> (the SDK's getHost):
  // a wildcard DNS name that reaches the envd listener.
  auto domain = opts->get("domain", "");
  if (domain.size() > 200 || domain.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-:")
                               != std::string::npos)
    return fail("--domain must be a lowercase DNS name (and optional :port), like sandboxes.example.com");
  auto console = opts->get("console", "true");
  if (console != "true" && console != "false")
    return fail("--console must be true or false");
  auto build_templates = opts->get("build-templates", "off");
  if (build_templates != "off" && build_templates != "background")
    return fail("--build-templates must be off or background");
  auto allow_private = opts->get("allow-private-webhooks", "false");
  if (allow_private != "true" && allow_private != "false")
    return fail("--allow-private-webhooks must be true or false");
  auto keep = parse_duration("event-retention", opts->get("event-retention", "7d"));
  auto every = parse_duration("compaction-interval", opts->get("compaction-interval", "1h"));
  if (!keep)
    return fail(keep.error().message);
  if (!every || every->count() == 0)
    return fail("--compaction-interval must be a positive duration");
  auto sample_every = parse_duration("metrics-interval", opts->get("metrics-interval", "5s"));
  if (!sample_every || sample_every->count() < 100)
    return fail("--metrics-interval must be a duration of at least 100ms");
  auto give_up = parse_duration("webhook-give-up", opts->get("webhook-give-up", "24h"));
  if (!give_up || give_up->count() == 0)
    return fail("--webhook-give-up must be a positive duration");

  // A control node for worker nodes (sandboxd worker --join), over TLS keyed
  // by the cluster secret; without --cluster-listen, one host as before.
  auto cluster_listen = opts->get("cluster-listen", "");
  std::optional<std::pair<std::string, uint16_t>> cluster_hp;
  if (!cluster_listen.empty()) {
    auto hp = http::parse_listen(cluster_listen);
    if (!hp)
      return fail("--cluster-listen: " + hp.error().message);
    cluster_hp = *hp;
    if (opts->get("cluster-secret-file", "").empty())
      return fail("--cluster-listen needs --cluster-secret-file (e.g. openssl rand -hex 32 > FILE; "
                  "chmod 600 FILE; the same file on every worker)");
  }
  auto node_name = opts->get("node-name", "control");
  if (!valid_node_name(node_name))
    return fail("--node-name must be 1 to 63 of a-z, 0-9 and '-'");
  auto rejoin_grace = parse_duration("rejoin-grace", opts->get("rejoin-grace", "60s"));
  if (!rejoin_grace || rejoin_grace->count() < 1000)
    return fail("--rejoin-grace must be a duration of at least 1s");

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return fail("cannot create " + dir + ": " + ec.message());
  auto opened = store::open(dir + "/db");
  if (!opened)
    return fail(opened.error().message
                + " (is another sandboxd serving this data dir?)");
  std::shared_ptr<store> db = std::move(*opened);
  auto key = bootstrap_key(*db, dir);
  if (!key)
    return fail(key.error().message);

  auto catalog = template_catalog::load(opts->get("templates", default_templates_file()),
                                        opts->get("template-cache", default_template_cache));
  if (!catalog)
    return fail(catalog.error().message);
  // The orgs' own templates (POST /templates) are this server's data.
  catalog->set_user_dir(dir + "/templates");
  // The default names `base`: a catalogue of one's own without it has none.
  auto warm_text = opts->get("warm-pool", "");
  if (warm_text.empty())
    warm_text = catalog->find("base") ? default_warm_pool : "0";
  auto warm = parse_warm_pool(warm_text, *catalog);
  if (!warm)
    return fail(warm.error().message);
  for (auto& t : catalog->all())
    if (!catalog->is_built(t))
      spdlog::warn("template {} is not built (sandboxd template build {})", t.name, t.name);
  auto agents = agent_catalog::load(opts->get("agents", default_agents_file()));
  if (!agents)
    return fail(agents.error().message);
  // The egress proxy (network.rules): its CA, and secrets opened per request.
  auto ca = egress_ca::open(dir + "/egress-ca");
  if (!ca)
    return fail(ca.error().message);
  egress_proxy_config egress_cfg;
  egress_cfg.ca = *ca;
  egress_cfg.trust_file = opts->get("egress-trust-file", "");
  egress_cfg.secret = [db, key = secrets_key(db->secret())](
                        const std::string& org, const std::string& name) -> result<std::string> {
    auto found = db->find_secret(org, name);
    if (!found)
      return found.error();
    if (!*found)
      return bad_gateway("secret '" + name + "' does not exist");
    auto value = open_secret(key, **found);
    if (!value)
      return internal_error("secret '" + name + "' does not open with this install's key");
    return *value;
  };
  auto egress = egress_proxy::start(std::move(egress_cfg));
  if (!egress)
    return fail(egress.error().message);
  network_config net_cfg;
  net_cfg.egress = *egress;
  auto runtime = std::make_shared<container_runtime>(
    opts->get("oci-runtime", "crun"), dir,
    opts->get("agent", self_dir() + "/sandboxd-agent"), net_cfg);
  runtime->set_inode_limit(*inodes);
  auto volumes = std::make_shared<volume_store>(dir, dir + "/runtime/disks");
  runtime->set_volumes(volumes);
  if (auto st = runtime->check_host(); !st)
    return fail(st.error().message);

  // Signals are taken by sigwait below, never by a worker thread.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto nofile = raise_open_files_limit();
  bool lowered = false;
  auto limits = http::fit_connection_limits(
    {static_cast<size_t>(*max_conns), static_cast<size_t>(*per_client)}, nofile,
    static_cast<size_t>(*max_sandboxes), &lowered, tls.has_value());
  if (lowered)
    spdlog::warn("the open files limit ({}) holds {} connections per listener, {} per client "
                 "address: less than asked for", nofile, limits.total, limits.per_client);

  caf::actor_system_config cfg;
  add_message_types(cfg);
  if (cluster_hp)
    if (auto s = configure_cluster(cfg, opts->get("cluster-secret-file", ""), dir + "/cluster"); !s)
      return fail(s.error().message);
  // Work sharing: idle workers block on the shared queue. Work stealing
  // polls (spins, then naps every 10 ms) after each message: with a metrics
  // sample per sandbox every few seconds the workers never rested (0.37 of 2
  // cores busy at 300 idle sandboxes).
  cfg.set("scheduler.policy", caf::atom("sharing"));
  caf::actor_system sys{cfg};
  blocking_executors executors{sys}; // stopped before the system is
  webhooks::init_http_client();
  auto hooks = spawn_webhook_dispatcher(
    sys, {db, allow_private == "true",
          std::chrono::duration_cast<std::chrono::milliseconds>(*give_up).count()});
  auto log = spawn_event_log(sys, db, hooks, {*keep, *every});
  registry_config rcfg;
  rcfg.db = db;
  rcfg.runtime = runtime;
  std::shared_ptr<cluster_runtime> cluster;
  if (cluster_hp) {
    auto front = tunnel_front::start(sys, tunnel_dir(dir));
    if (!front)
      return die(front.error().message);
    cluster = std::make_shared<cluster_runtime>(
      sys, runtime, measure_node(node_name, *runtime, *catalog),
      std::shared_ptr<tunnel_front>(std::move(*front)));
    auto drained = db->drained_nodes();
    if (!drained)
      return die(drained.error().message);
    cluster->keep_draining(*drained);
    rcfg.runtime = cluster;
  }
  auto templates = std::make_shared<const template_catalog>(std::move(*catalog));
  rcfg.templates = templates;
  // The catalogue templates not built yet: built here as it serves (one at
  // a time, in catalogue order), or left to `sandboxd template build`.
  std::shared_ptr<const catalogue_builds> background_builds;
  if (build_templates == "background")
    background_builds = catalogue_builds::start(templates);
  rcfg.background_builds = background_builds;
  rcfg.log = log;
  rcfg.max_sandboxes = static_cast<size_t>(*max_sandboxes);
  rcfg.max_sandboxes_per_org = static_cast<size_t>(*per_org);
  rcfg.max_snapshots_per_org = static_cast<size_t>(*snapshots_per_org);
  rcfg.metrics_interval = *sample_every;
  rcfg.disk_size_mb = static_cast<int>(*disk_mb);
  rcfg.volumes = volumes;
  rcfg.volume_size_mb = *volume_mb;
  rcfg.max_volumes_per_org = static_cast<size_t>(*volumes_per_org);
  runtime->keep_disks_ready(ready_disks, static_cast<int64_t>(*disk_mb) << 20);
  rcfg.warm_pool = std::move(*warm);
  rcfg.render = [keys = http::sandbox_json_keys{db->secret(), domain}](const sandbox_record& r) {
    return http::sandbox_json(r, keys).dump();
  };
  auto registry = spawn_registry(sys, rcfg);
  {
    caf::scoped_actor self{sys};
    bool ok = true;
    self->request(registry, caf::infinite, atom::recover::value)
      .receive(
        [&](uint64_t live) {
          spdlog::info("replayed {} events; {} live sandboxes, reconciling", db->last_seq(), live);
        },
        [&](caf::error& e) {
          ok = false;
          spdlog::error("recovery failed: {}", from_error(e).message);
        });
    if (!ok)
      return die("recovery failed");
  }
  std::vector<template_spec> leftovers;
  auto interrupted = fail_interrupted_builds(*db, *templates, &leftovers);
  if (!interrupted)
    return die("cannot end the template builds a restart interrupted: "
               + interrupted.error().message);
  if (*interrupted)
    spdlog::warn("{} template builds were interrupted by the restart", *interrupted);
  auto builder = spawn_template_builder(sys, {db, templates, registry, leftovers, dir});
  auto envd_hp = http::parse_listen(envd_listen);
  http::api_context ctx{sys, registry, db, hooks, allow_private == "true",
                        scheme + envd_listen, envd_hp->second, templates,
                        std::make_shared<const agent_catalog>(std::move(*agents)), builder,
                        domain, dir, background_builds, log, console == "true"};
  auto server = http::api_server::start(ctx, api_listen, *http_threads, limits, std::move(api_tls));
  if (!server)
    return die(server.error().message);
  // Template files whose upload a stop or crash cut short: never complete.
  if (auto swept = http::remove_interrupted_template_uploads(dir); !swept)
    spdlog::warn("interrupted template file uploads not removed: {}", swept.error().message);
  else if (*swept)
    spdlog::info("removed {} interrupted template file uploads", *swept);
  http::envd_context envd_ctx{sys, registry, db, dir, std::make_shared<http::envd_defaults>(),
                              volumes};
  envd_ctx.tickets = std::make_shared<http::terminal_tickets>(static_cast<size_t>(*max_terminals));
  auto envd = http::envd_server::start(envd_ctx, limits, envd_listen, tls);
  if (!envd)
    return die(envd.error().message);
  if (cluster) {
    auto gate = spawn_cluster_gate(
      sys, {cluster, registry, db, std::chrono::duration_cast<std::chrono::seconds>(*rejoin_grace),
            [node_name, runtime, templates] { return measure_node(node_name, *runtime, *templates); }});
    auto port = caf::openssl::publish(gate, cluster_hp->second, cluster_hp->first.c_str(), true);
    if (!port)
      return die("cannot listen on " + cluster_listen + " (cluster): " + sys.render(port.error()));
  }
  auto admin = admin_channel::start(dir + "/admin.sock", db, cluster_admin(cluster, db));
  if (!admin)
    return die(admin.error().message);
  if (opts->get("log-format", "text") == "json") {
    // One log line like any other; the key stays in its file, out of the journal.
    spdlog::info("sandboxd is serving: API {}{}, envd {}{}{}, data dir {}, API key in {}/api-key",
                 scheme, api_listen, scheme, envd_listen, cluster ? ", cluster " + cluster_listen : "", dir, dir);
  } else {
    std::printf("sandboxd is serving\n"
              "  API:      %s%s\n"
              "  envd:     %s%s (E2B_SANDBOX_URL)\n"
              "%s"
              "  data dir: %s\n"
              "  API key:  %s (also in %s/api-key)\n",
              scheme.c_str(), api_listen.c_str(), scheme.c_str(), envd_listen.c_str(),
              cluster ? ("  cluster:  " + cluster_listen + " (TLS; sandboxd worker --join)\n").c_str()
                      : "",
              dir.c_str(), key->c_str(),
              dir.c_str());
    std::fflush(stdout);
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("signal {}: stopping; sandboxes keep running", sig);
  start_shutdown_watchdog(sigs);
  (*server)->stop();
  admin->reset();
  {
    // Warm sandboxes were never anyone's: they go (the watchdog bounds the
    // wait; a restart removes any left).
    caf::scoped_actor self{sys};
    self->request(registry, std::chrono::seconds(4), atom::drain::value)
      .receive([](uint64_t n) { spdlog::info("removed {} warm sandboxes", n); },
               [](caf::error& e) {
                 spdlog::warn("warm sandboxes not all removed: {}", from_error(e).message);
               });
  }
  // Killed sandboxes whose leftovers are still being removed (a restart
  // removes what a crash leaves).
  if (!runtime->wait_reclaims(std::chrono::seconds(4)))
    spdlog::warn("killed sandboxes not all removed yet: the next start removes the rest");
  runtime->remove_roots_dir(); // only when no sandbox of ours has a root there
  if (cluster) {
    // The next start makes the tunnels' sockets again as workers rejoin.
    std::error_code gone;
    fs::remove_all(tunnel_dir(dir), gone);
  }
  // Every event is already synced; sandbox actors hold nothing to flush and
  // their containers must keep running, so leave without tearing them down.
  std::fflush(stdout);
  std::_Exit(0);
}

} // namespace sandboxd::cli
