#include <cstdio>
#include <string>

#include <spdlog/cfg/env.h>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"

namespace {

const char* usage = R"(sandboxd — a self-hosted, E2B-compatible sandbox server

Usage:
  sandboxd serve [--data-dir DIR] [--api-listen HOST:PORT] [--envd-listen HOST:PORT]
                 [--oci-runtime crun|runsc|PATH] [--templates FILE] [--template-cache DIR]
                 [--max-sandboxes N] [--http-threads N] [--allow-private-webhooks true|false]
                 [--event-retention 7d] [--compaction-interval 1h] [--max-sandboxes-per-org N]
                 [--agents FILE] [--webhook-give-up 24h] [--metrics-interval 5s]
                 [--warm-pool base=2[,NAME=N...]|0] [--max-connections 4096]
                 [--max-connections-per-client 2048] [--max-terminals 256] [--max-snapshots-per-org 100]
                 [--volume-size-mb 1024] [--max-volumes-per-org 100]
                 [--egress-trust-file PEM]  # upstream CAs network.rules hosts may use
                 [--log-format text|json]
                 [--tls-cert PEM --tls-key PEM]  # HTTPS on the API and envd listeners
                 [--build-templates off|background]  # build missing catalogue templates while serving
                 [--console true|false]      # the web console on the API listener's /
                 [--cluster-listen HOST:PORT --cluster-secret-file FILE] [--node-name control]
                 [--rejoin-grace 60s]                        # a control node for workers
  sandboxd worker --join HOST:PORT --cluster-secret-file FILE [--name NAME]
                  [--data-dir ./worker-data] [--oci-runtime crun] [--templates FILE]
                  [--template-cache DIR] [--log-format text|json]  # run sandboxes for a control node
  sandboxd worker list [--data-dir DIR] [--json]  # the control node's nodes
  sandboxd worker drain NAME [--undo] [--data-dir DIR]   # no new sandboxes on NAME
  sandboxd keys create --org NAME [--data-dir DIR]
  sandboxd template build NAME|all [--templates FILE] [--template-cache DIR]
  sandboxd template list [--templates FILE] [--template-cache DIR]
  sandboxd audit verify [--data-dir DIR]          # walk the hash chain, name the first broken link
  sandboxd audit replay [--data-dir DIR] [--sandbox ID] [--since RFC3339]
                                                  # events, then the state each sandbox reaches
  sandboxd cleanup [--data-dir DIR]               # remove every sandbox of a stopped server's data dir
  sandboxd sandbox list|create|info|exec|shell|logs|kill|pause|resume|files|templates ...
                                                  # a client for any server: sandboxd sandbox help
  sandboxd --help

Defaults: --data-dir ./data, --api-listen 127.0.0.1:3000,
--envd-listen 127.0.0.1:49983, --oci-runtime crun,
--templates <repo>/ops/templates.json, --template-cache /var/cache/sandboxd/templates,
--agents <repo>/ops/agents.json.
)";

} // namespace

int main(int argc, char** argv) {
  spdlog::cfg::load_env_levels(); // SPDLOG_LEVEL=debug shows where each create's time goes
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "serve")
    return sandboxd::cli::serve(argc, argv);
  if (cmd == "keys")
    return sandboxd::cli::keys(argc, argv);
  if (cmd == "template")
    return sandboxd::cli::templates(argc, argv);
  if (cmd == "audit")
    return sandboxd::cli::audit(argc, argv);
  if (cmd == "worker")
    return sandboxd::cli::worker(argc, argv);
  if (cmd == "cleanup")
    return sandboxd::cli::cleanup(argc, argv);
  if (cmd == "sandbox")
    return sandboxd::cli::sandbox(argc, argv);
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(usage, stdout);
    return 0;
  }
  std::fputs(usage, stderr);
  if (!cmd.empty())
    std::fprintf(stderr, "\nunknown command: %s\n", cmd.c_str());
  return 2;
}
